"""Appending to the keyed chain: more than one writer, and a reply lost after Redis applied a batch."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import orjson
import redis

from server.app import store_client
from base import keys
from server.audit import AuditFiles, Witness, verify_chain
from base.config import PROJECT_ROOT
from server.ingest import TickAppender
from server.redis_process import free_port, start_redis
from tests.system import System, wait_for

TICK = {"commodity": "bawang-merah", "market": "pasar-kosambi", "province": "32", "price": 38000}
PARTITION = keys.Partition(0)  # one partition: the whole stream is one chain


def test_two_web_processes_append_to_one_chain(tmp_path):
    running = System(tmp_path, env={"PASARWATCH_DATA_DIR": str(tmp_path / "data")}).start("web")
    port = free_port()
    second = subprocess.Popen([sys.executable, "-m", "server.cli", "web"],
                              env={**running.env, "PASARWATCH_PORT": str(port)}, cwd=PROJECT_ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        other = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=running.auth_headers, timeout=10)

        def up() -> bool:
            try:
                return other.get("/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 20, "the second web process")
        for n in range(6):
            client = running.http if n % 2 else other
            response = client.post("/api/v1/ticks", content=orjson.dumps([{**TICK, "price": 38000 + n}] * 3),
                                   headers={"content-type": "application/json"})
            assert response.status_code == 202, response.text
        report = running.http.get("/api/v1/audit/verify").json()
        assert report["intact"] is True and report["checked"] == 18, report
        # Each saw the other move the head, found its own pinned entry still there, and went on.
        assert AuditFiles(tmp_path / "data").breaks() == []
        other.close()
    finally:
        second.terminate()
        second.wait(timeout=10)
        running.stop()


class ReplyDropper:
    """A TCP relay to Redis that, when armed, lets the next script through and drops its reply."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.armed = False
        self.dropped = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        script_sent = asyncio.Event()

        async def to_redis() -> None:
            while data := await reader.read(65536):
                if self.armed and b"EVALSHA" in data.upper():
                    script_sent.set()
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def to_client() -> None:
            while data := await up_reader.read(65536):
                if script_sent.is_set() and self.armed:
                    self.armed = False
                    self.dropped += 1
                    writer.close()  # Redis has run the script; the client never hears so
                    up_writer.close()
                    return
                writer.write(data)
                await writer.drain()
            writer.close()

        await asyncio.gather(to_redis(), to_client(), return_exceptions=True)


def test_a_reply_lost_after_redis_applied_a_batch_does_not_append_it_twice(tmp_path):
    redis_process = start_redis(tmp_path / "redis")

    async def scenario() -> list[list[str | None]]:
        dropper = ReplyDropper(redis_process.port)
        port = await dropper.start()
        # The web process' own client: it resends a command once after a broken connection.
        client = store_client(redis_process.url.replace(f":{redis_process.port}/", f":{port}/"), retry_once=True)
        appender = TickAppender(client, Witness(AuditFiles(tmp_path / "audit")), keys.partitions(1))
        try:
            first = await appender.append([{**TICK, "price": 38000 + n, "device": "d"} for n in range(3)])
            dropper.armed = True
            second = await appender.append([{**TICK, "price": 39000 + n, "device": "d"} for n in range(2)])
            assert dropper.dropped == 1
            return [first, second]
        finally:
            await client.aclose()
            dropper.server.close()

    try:
        first, second = asyncio.run(asyncio.wait_for(scenario(), 30))
        store = redis.Redis.from_url(redis_process.url)
        entries = store.xrange(PARTITION.ticks)
        assert [e.decode() for e, _ in entries] == first + second
        assert [orjson.loads(f[b"t"])["price"] for _, f in entries] == [38000, 38001, 38002, 39000, 39001]
        files = AuditFiles(tmp_path / "audit")
        assert files.pins()[0][0] == second[-1]
        assert verify_chain(store, files.key(), files.pins()[0], files.breaks(), partition=PARTITION)["intact"] is True
    finally:
        redis_process.stop()
