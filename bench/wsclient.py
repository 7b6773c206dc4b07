"""A minimal WebSocket client for load generation: handshake, unmasked server frames, ping/pong.

The fan-out benchmark runs thousands of clients on the same two cores as the server under
test. A full client library spends tens of microseconds of Python per frame, so with a server
that sends one frame per message the clients, not the server, would set the figure. This
client does only what a receiving load generator needs (RFC 6455 sections 4 and 5: text and
binary frames, fragments, ping, close) and hands each complete message to a callback.

>>> got = []
>>> reader = FrameReader(got.append, lambda data: None)
>>> reader.feed(b"\\x81\\x05hello\\x89\\x00\\x01\\x01a")  # text "hello", a ping, a fragment "a"
>>> reader.feed(b"\\x80\\x02bc")                        # the last fragment "bc"
>>> got
[b'hello', b'abc']
"""
from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Callable

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (clients must mask, RFC 6455 5.3)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    repeated = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(length, "big")
    return header + mask + masked


class FrameReader:
    """Splits a byte stream of server frames into messages; answers pings through ``send``."""

    def __init__(self, on_message: Callable[[bytes], None], send: Callable[[bytes], None]):
        self.on_message = on_message
        self.send = send
        self.closed = False
        self._buffer = bytearray()
        self._fragments: list[bytes] = []

    def feed(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        pos = 0
        end = len(buffer)
        while end - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            length = second & 0x7F
            header = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = (buffer[pos + 2] << 8) | buffer[pos + 3]
                header = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = struct.unpack_from("!Q", buffer, pos + 2)[0]
                header = 10
            if end - pos < header + length:
                break
            payload = bytes(buffer[pos + header:pos + header + length])
            pos += header + length
            self._frame(first & 0x80, first & 0x0F, payload)
        del buffer[:pos]

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
            if fin and not self._fragments:
                self.on_message(payload)
            elif fin:
                self._fragments.append(payload)
                self.on_message(b"".join(self._fragments))
                self._fragments.clear()
            else:
                self._fragments.append(payload)
        elif opcode == OP_PING:
            self.send(client_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            if not self.closed:
                self.closed = True
                self.send(client_frame(OP_CLOSE, payload[:2]))


class _Protocol(asyncio.Protocol):
    def __init__(self, on_message: Callable[[bytes], None]):
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.reader: FrameReader | None = None
        self.upgraded = asyncio.get_running_loop().create_future()
        self.lost = asyncio.get_running_loop().create_future()
        self._head = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.reader is not None:
            self.reader.feed(data)
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            return
        status = bytes(self._head[:self._head.find(b"\r\n")])
        rest = bytes(self._head[end + 4:])
        if b" 101 " not in status + b" ":
            self.upgraded.set_exception(ConnectionError(f"upgrade refused: {status.decode(errors='replace')}"))
            return
        self.reader = FrameReader(self.on_message, self.transport.write)
        self.upgraded.set_result(None)
        if rest:
            self.reader.feed(rest)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(exc or ConnectionError("closed during handshake"))
        if not self.lost.done():
            self.lost.set_result(exc)


class Connection:
    """An open WebSocket: ``send_text`` and ``close``; messages go to the callback given to ``connect``."""

    def __init__(self, protocol: _Protocol):
        self._protocol = protocol

    @property
    def open(self) -> bool:
        return not self._protocol.lost.done()

    def send_text(self, text: str) -> None:
        self._protocol.transport.write(client_frame(OP_TEXT, text.encode()))

    async def close(self, timeout: float = 2.0) -> None:
        transport = self._protocol.transport
        if self.open:
            transport.write(client_frame(OP_CLOSE, struct.pack("!H", 1000)))
            try:
                await asyncio.wait_for(asyncio.shield(self._protocol.lost), timeout)
            except asyncio.TimeoutError:
                pass
        transport.close()


async def connect(host: str, port: int, path: str, on_message: Callable[[bytes], None],
                  timeout: float = 30.0, local_host: str | None = None) -> Connection:
    """Open a WebSocket to ``ws://host:port/path`` (from ``local_host`` if given)."""
    loop = asyncio.get_running_loop()
    _, protocol = await asyncio.wait_for(
        loop.create_connection(lambda: _Protocol(on_message), host, port,
                               local_addr=(local_host, 0) if local_host else None), timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    protocol.transport.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    try:
        await asyncio.wait_for(protocol.upgraded, timeout)
    except BaseException:
        protocol.transport.close()
        raise
    return Connection(protocol)
