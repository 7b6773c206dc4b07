"""One fan-out client process: many /ws/prices connections, driven by commands over a pipe.

Commands (a tuple, first item the name) and replies:
- ``("primed",)`` -> how many connections have received a price since they connected;
- ``("received",)`` -> price messages received since connecting (to see a backlog drain);
- ``("start",)`` -> counting and latency recording begin (reply ``"started"``);
- ``("stop",)`` -> ``{"messages", "frames", "latency" (Histogram.to_json())}`` for the window;
- ``("close",)`` -> connections closed, reply ``"closed"``, the process ends.

Every price message is counted by a byte search. Latency is read from probe messages only
(their ``id`` is ``p<publish time>``), so recording does not become the clients' bottleneck
when a server delivers hundreds of thousands of messages a second.
"""
from __future__ import annotations

import asyncio
import re
import time
from multiprocessing.connection import Connection as Pipe

from bench.procs import raise_fd_limit
from bench.stats import Histogram
from bench.wsclient import Connection, connect

PRICE = b'"type":"price"'
PROBE = re.compile(rb'"id":"p([0-9.]+)"')
CONNECT_CONCURRENCY = 64
# The server limits connections per client address (PASARWATCH_WS_MAX_PER_ADDRESS, 256 by
# default), as it should: thousands of browsers come from thousands of addresses. The clients
# do too, from the loopback range.
PER_ADDRESS = 200


def source_address(index: int) -> str:
    """Loopback address of the ``index``-th connection overall.

    >>> source_address(0), source_address(199), source_address(200), source_address(60_000)
    ('127.1.0.1', '127.1.0.1', '127.1.0.2', '127.1.1.51')
    """
    n = index // PER_ADDRESS
    return f"127.1.{n // 250}.{n % 250 + 1}"


class Tally:
    def __init__(self, count: int):
        self.primed = bytearray(count)
        self.received = 0
        self.measuring = False
        self.messages = 0
        self.frames = 0
        self.latency = Histogram()

    def receiver(self, index: int):
        def on_message(payload: bytes) -> None:
            count = payload.count(PRICE)
            self.received += count
            if count and not self.primed[index]:
                self.primed[index] = 1
            if not self.measuring:
                return
            now = time.time()
            self.frames += 1
            self.messages += count
            for sent in PROBE.findall(payload):
                self.latency.add(now - float(sent))

        return on_message

    def start(self) -> None:
        self.messages = self.frames = 0
        self.latency = Histogram()
        self.measuring = True

    def stop(self) -> dict:
        self.measuring = False
        return {"messages": self.messages, "frames": self.frames, "latency": self.latency.to_json()}


async def _open_all(host: str, port: int, path: str, first: int, count: int, subscribe: str,
                    tally: Tally) -> tuple[list[Connection], list[str]]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    errors: list[str] = []

    async def one(index: int) -> Connection | None:
        async with gate:
            try:
                connection = await connect(host, port, path, tally.receiver(index),
                                           local_host=source_address(first + index))
            except (OSError, asyncio.TimeoutError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return None
            connection.send_text(subscribe)
            return connection

    opened = await asyncio.gather(*(one(i) for i in range(count)))
    return [c for c in opened if c is not None], errors


async def _serve(pipe: Pipe, host: str, port: int, path: str, first: int, count: int, subscribe: str) -> None:
    loop = asyncio.get_running_loop()
    tally = Tally(count)
    connections, errors = await _open_all(host, port, path, first, count, subscribe, tally)
    pipe.send({"connected": len(connections), "errors": errors[:5], "failed": len(errors)})
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        name = command[0]
        if name == "primed":
            pipe.send(sum(tally.primed))
        elif name == "received":
            pipe.send(tally.received)
        elif name == "start":
            tally.start()
            pipe.send("started")
        elif name == "stop":
            pipe.send(tally.stop())
        elif name == "close":
            await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
            pipe.send("closed")
            return


def client_main(pipe: Pipe, host: str, port: int, path: str, first: int, count: int, subscribe: str) -> None:
    """Entry point of a client process (multiprocessing target): connections first..first+count-1."""
    raise_fd_limit()
    asyncio.run(_serve(pipe, host, port, path, first, count, subscribe))
