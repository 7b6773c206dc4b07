"""WebSocket clients that do not read, flood, or outlive their token: a real server process.

Attackers are raw sockets that do the WebSocket handshake and then write frames without ever
reading, as a hostile client would; the web process's memory is read from /proc, and whether the
server really let go of a connection is read from the attacker's own socket (TCP_INFO).
"""
from __future__ import annotations

import base64
import contextlib
import itertools
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable

import orjson
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from server import auth
from tests.system import System, wait_for
from tests import partitions

MIB = 1 << 20
GROWTH_LIMIT = 50 * MIB
SERIES = 1000  # the snapshot a subscribe costs: 1,000 latest prices
TCP_ESTABLISHED = 1
PRICES = itertools.count(50_000)
SEND_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    running = System(tmp_path_factory.mktemp("wslimits"), env={
        "PASARWATCH_WS_SEND_TIMEOUT": str(SEND_TIMEOUT),
        "PASARWATCH_DEVICE_BURST": "100000",
    }).start()
    ticks = [{"commodity": "cabai-rawit-merah", "market": f"pasar-uji-{n:04d}", "province": "32",
              "price": 40_000 + n} for n in range(SERIES)]
    assert running.post(ticks).status_code == 202
    running.wait_processed(SERIES, 60)
    wait_for(lambda: len(partitions.merged(running.redis, "latest")) >= SERIES, 20, "the latest prices")
    yield running
    running.stop()


@pytest.fixture
def fresh_web(system):
    """A web process that has served no attack yet: memory one attack freed (and the process
    kept) would hide the next one's growth."""
    system.kill("web")
    system.start_process("web")
    wait_for(system._web_up, 20, "web server")
    return system


# -- a raw client: handshake, then frames written without ever reading -----------------------------

def raw_socket(system: System, path: str, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer:
        # A small window: the server's writes back up after a few KB instead of megabytes.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", system.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{system.port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(1)  # byte by byte: read the handshake and not one byte of what follows
        assert chunk, "server closed during the handshake"
        response += chunk
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (payloads up to 64 KiB)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    length = len(payload)
    header = bytes([0x80 | opcode]) + (bytes([0x80 | length]) if length < 126 else
                                       bytes([0x80 | 126]) + struct.pack("!H", length))
    return header + mask + masked


def text(message: dict) -> bytes:
    return frame(0x1, orjson.dumps(message))


def tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def server_let_go(sock: socket.socket) -> bool:
    """The server closed or reset the connection (seen without reading a byte)."""
    return tcp_state(sock) != TCP_ESTABLISHED


def write_until_stalled(sock: socket.socket, data: bytes, enough: Callable[[], bool] = lambda: False,
                        stall: float = 5.0) -> int:
    """Write ``data``; stop early when the server stops reading for ``stall`` seconds, or
    ``enough()`` (looked at every MiB) says the attack already did its harm.

    Returns the bytes written. A server with flow control stops reading a client that does not
    read its replies, so the client's writes stall: that is the behaviour under test, not a
    failure to synchronise.
    """
    sock.setblocking(False)
    view, sent, looked = memoryview(data), 0, 0
    try:
        while sent < len(data):
            if sent - looked >= MIB:
                looked = sent
                if enough():
                    break
            _, writable, _ = select.select([], [sock], [], stall)
            if not writable:
                break
            try:
                sent += sock.send(view[sent:sent + 65536])
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
    finally:
        sock.setblocking(True)
    return sent


def rss(system: System) -> int:
    with open(f"/proc/{system.processes['web'].pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def server_receive_queue(system: System, sock: socket.socket) -> int | None:
    """Bytes the web process has not yet read from this client (None once the connection is gone)."""
    client_port = sock.getsockname()[1]
    wanted_local, wanted_remote = f"0100007F:{system.port:04X}", f"0100007F:{client_port:04X}"
    with open("/proc/net/tcp") as table:
        for line in itertools.islice(table, 1, None):
            fields = line.split()
            if fields[1] == wanted_local and fields[2] == wanted_remote:
                return int(fields[4].split(":")[1], 16)
    return None


def peak_growth(system: System, base: int, sock: socket.socket, window: float = 5.0,
                until_read: bool = False) -> int:
    """The most the web process grew above ``base`` within ``window`` seconds of the attack.

    The window is how long the test watches for growth, not a wait for an event: a bounded
    server shows none however long it is watched. ``until_read``: stop watching once the web
    process has read all this client sent (its replies to pings are made as it reads them).
    """
    peak, deadline = rss(system) - base, time.monotonic() + window
    while time.monotonic() < deadline and peak < GROWTH_LIMIT:
        if until_read and not server_receive_queue(system, sock):
            break
        time.sleep(0.05)
        peak = max(peak, rss(system) - base)
    return peak


# -- a normal client that reads everything --------------------------------------------------------

class Watcher:
    """A dashboard reading /ws/prices for one market in a thread, noting every price it sees."""

    def __init__(self, system: System, market: str):
        self.system, self.market = system, market
        self.prices: set[float] = set()
        self.snapshot = threading.Event()
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(f"{system.ws_url}/ws/prices"))
        self.ws.send(orjson.dumps({"type": "subscribe", "market": [market]}).decode())
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.snapshot.wait(15), "the watcher got no snapshot"

    def _read(self) -> None:
        try:
            for raw in self.ws:
                for message in orjson.loads(raw):
                    if message.get("type") == "snapshot":
                        self.snapshot.set()
                    elif message.get("type") == "price":
                        self.prices.add(message["price"])
        except ConnectionClosed:
            pass

    def gets_a_live_price(self) -> None:
        price = float(next(PRICES))
        tick = {"commodity": "cabai-rawit-merah", "market": self.market, "province": "32", "price": price}
        assert self.system.post(tick).status_code == 202
        wait_for(lambda: price in self.prices, 15, "the normal client to get a live price")

    def close(self) -> None:
        self._stack.close()
        self.thread.join(10)


# -- tests ----------------------------------------------------------------------------------------

def test_a_subscribe_flood_from_a_client_that_never_reads_stays_bounded(fresh_web):
    system = fresh_web
    watcher = Watcher(system, "pasar-normal-1")
    base = rss(system)
    attacker = raw_socket(system, "/ws/prices", receive_buffer=4096)
    try:
        write_until_stalled(attacker, text({"type": "subscribe"}) * 400)
        growth = peak_growth(system, base, attacker)

        assert growth < GROWTH_LIMIT, f"the web process grew {growth / MIB:.0f} MiB"
        watcher.gets_a_live_price()
    finally:
        attacker.close()
        watcher.close()


def test_subscribes_past_the_rate_limit_are_refused(system):
    with connect(f"{system.ws_url}/ws/prices", max_size=None) as ws:
        replies = []
        for _ in range(40):
            ws.send('{"type": "subscribe", "market": ["pasar-uji-0001"]}')
            while True:
                messages = [m for m in orjson.loads(ws.recv(timeout=10)) if m["type"] in ("snapshot", "error")]
                if messages:
                    replies.extend(messages)
                    break
        kinds = [m["type"] for m in replies]
        assert kinds[:30] == ["snapshot"] * 30
        assert set(kinds[30:]) == {"error"} and "too many subscribes" in replies[-1]["reason"]


def test_a_ping_flood_from_a_client_that_never_reads_pongs_stays_bounded(fresh_web):
    system = fresh_web
    watcher = Watcher(system, "pasar-normal-2")
    base = rss(system)
    attacker = raw_socket(system, "/ws/prices")
    try:
        ping = frame(0x9, b"p" * 125)
        write_until_stalled(attacker, ping * 1_000_000,  # 131 MB of pings, 127 MB of pongs owed
                            enough=lambda: rss(system) - base >= GROWTH_LIMIT)
        growth = peak_growth(system, base, attacker, until_read=True)

        assert growth < GROWTH_LIMIT, f"the web process grew {growth / MIB:.0f} MiB"
        watcher.gets_a_live_price()
    finally:
        attacker.close()
        watcher.close()


def test_a_client_the_hub_dropped_is_disconnected_without_its_help(system):
    watcher = Watcher(system, "pasar-normal-3")
    attacker = raw_socket(system, "/ws/prices", receive_buffer=4096)
    try:
        # 20 snapshots, about 6 MB: more than the kernel's buffers for the connection take in.
        attacker.sendall(text({"type": "subscribe"}) * 20)
        # Prices keep flowing to it; it reads none, so a send stalls and the hub drops it.
        for _ in range(3):
            watcher.gets_a_live_price()
        wait_for(lambda: server_let_go(attacker), 10 * SEND_TIMEOUT,
                 "the server to close the dropped client's connection")
        assert "dropping /ws/prices client: send timed out" in system.log("web")
        watcher.gets_a_live_price()
    finally:
        attacker.close()
        watcher.close()


def test_a_revoked_device_is_cut_off_its_open_ingest_socket(system):
    created = system.http.post("/api/v1/devices", json={"id": "hp-revoked", "markets": ["pasar-kosambi"]})
    assert created.status_code == 201
    headers = {"authorization": f"Bearer {created.json()['token']}"}
    tick = {"commodity": "bawang-merah", "market": "pasar-kosambi", "province": "32", "price": 38000}
    with connect(f"{system.ws_url}/ws/ingest", additional_headers=headers) as ws:
        ws.send(orjson.dumps(tick).decode())
        assert orjson.loads(ws.recv(timeout=10))["status"] == 202
        assert system.http.delete("/api/v1/devices/hp-revoked").status_code == 200
        revoked_at = time.monotonic()
        accepted_after = 0
        with pytest.raises(ConnectionClosed) as closed:
            while time.monotonic() - revoked_at < 10:
                ws.send(orjson.dumps({**tick, "price": 38000 + accepted_after}).decode())
                ack = orjson.loads(ws.recv(timeout=10))
                accepted_after += ack["status"] == 202
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert time.monotonic() - revoked_at < 3


@pytest.mark.parametrize("path,kind,role", [("/ws/ingest", "device", "device"), ("/ws/prices", "person", "viewer")])
def test_a_revoked_token_ends_an_idle_socket_too(system, path, kind, role):
    token = auth.issue(system.redis, kind, f"idle-{role}", role, ("pasar-kosambi",) if kind == "device" else ())
    with connect(f"{system.ws_url}{path}", additional_headers={"authorization": f"Bearer {token}"}) as ws:
        auth.revoke(system.redis, kind, f"idle-{role}")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=5)  # /ws/prices may push prices meanwhile
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_tokens_in_the_query_string_never_reach_the_log(system):
    secret = auth.issue(system.redis, "person", "log-viewer", "viewer")
    with connect(f"{system.ws_url}/ws/prices?token={secret}"):
        pass
    forged = "pw_0123456789abcdef_" + "s3cr3t" * 7
    with pytest.raises(InvalidStatus):
        with connect(f"{system.ws_url}/ws/ingest?token={forged}"):
            pass
    assert system.http.get(f"/api/v1/series?token={secret}").status_code == 200
    # The refused handshake is logged last, just before its 403 is sent.
    wait_for(lambda: '"WebSocket /ws/ingest?token=' in system.log("web"), 10, "the handshake log lines")
    log = system.log("web")
    assert secret.split("_", 2)[2] not in log and "s3cr3t" not in log
    assert '"WebSocket /ws/prices?token=[redacted]" [accepted]' in log
    assert '"WebSocket /ws/ingest?token=[redacted]" 403' in log
