"""Fan-out of price, alert and health messages from Redis pub/sub to this process's clients.

Each web process holds ONE subscription to ``pw:events``. A message arrives already encoded by
the engine; the hub reads its routing fields once, decodes it to text once, and hands the same
string to every matching client. Each client has a bounded backlog: prices are conflated per
series (a newer price replaces an unsent older one), a new snapshot replaces an unsent older
one, alerts and other messages are never dropped, and a client whose backlog of those
overflows, or whose send stalls, is disconnected rather than allowed to slow the others. A
client's whole backlog goes out as one frame (a JSON array), so a burst costs one send per
client, not one per message.
"""
from __future__ import annotations

import asyncio
import gc
import logging
from collections import deque
from dataclasses import dataclass
from collections.abc import Awaitable, Callable

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from base import keys
from server.metrics import WS_SEND

log = logging.getLogger("pasarwatch.hub")

SendText = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class Filter:
    """Which series a client wants; an empty set means all."""

    commodity: frozenset[str] = frozenset()
    province: frozenset[str] = frozenset()
    market: frozenset[str] = frozenset()

    def matches(self, message: dict) -> bool:
        return (
            (not self.commodity or message.get("commodity") in self.commodity)
            and (not self.province or message.get("province") in self.province)
            and (not self.market or message.get("market") in self.market)
        )


SEND_TIMED_OUT = "send timed out"

# Objects the collector may allocate before a young collection (CPython's default is 700).
# One message to thousands of clients allocates tens of thousands of short-lived objects (a
# wake-up per client); with the default, young collections run in the middle of that burst and
# promote what is briefly alive into the old generation, which then fills up fast enough to
# trigger full collections every few seconds. A full collection walks every connection's
# objects: measured 0.2 s at 1,000 clients and over 1 s at 10,000, during which no client gets
# anything (bench/fanout.py's p99). With 20,000 young collections run about once per burst.
YOUNG_GC_THRESHOLD = 20_000


def relax_young_gc() -> None:
    """Raise the young-generation GC threshold to YOUNG_GC_THRESHOLD (never lowers it)."""
    young, middle, old = gc.get_threshold()
    if 0 < young < YOUNG_GC_THRESHOLD:
        gc.set_threshold(YOUNG_GC_THRESHOLD, middle, old)


class Client:
    """One WebSocket client's backlog and the task that writes it out."""

    def __init__(self, send_text: SendText, max_backlog: int, send_timeout: float):
        self.filter = Filter()
        self._send_text = send_text
        self._max_backlog = max_backlog
        self._send_timeout = send_timeout
        self._snapshot: list[str] = []
        self._prices: dict[str, str] = {}
        self._messages: deque[str] = deque()
        self._wake = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_reason = ""
        self._sending_since: float | None = None
        self._writer: asyncio.Task | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        # Loop time the oldest unsent published message arrived (publish-to-send histogram).
        self._oldest: float | None = None

    def offer_price(self, series: str, text: str, arrived: float | None = None) -> None:
        self._prices.pop(series, None)  # re-insert so the newest price goes out last
        self._prices[series] = text
        if self._oldest is None:
            self._oldest = arrived
        self._wake.set()

    def offer(self, text: str, arrived: float | None = None) -> None:
        if len(self._messages) >= self._max_backlog:
            self.drop("backlog of alerts overflowed")
            return
        self._messages.append(text)
        if self._oldest is None:
            self._oldest = arrived
        self._wake.set()

    def put_snapshot(self, texts: list[str]) -> None:
        """Queue a snapshot ahead of everything, in place of any snapshot not yet sent.

        Prices queued before it are older than it. At most one snapshot waits per client, so a
        client that subscribes again and again without reading holds one, not one per subscribe.
        """
        self._prices.clear()
        self._snapshot = texts
        self._wake.set()

    def drop(self, reason: str) -> None:
        if not self.closed.is_set():
            self.close_reason = reason
            self.closed.set()
            self._wake.set()

    async def write_forever(self) -> None:
        loop = asyncio.get_running_loop()
        self._writer = asyncio.current_task()
        # One watchdog timer per client, re-armed about once per send timeout, rather than a
        # timer (or asyncio.wait_for's extra task) per send: when one message goes to
        # thousands of clients, those cost more than the send itself.
        self._watchdog = loop.call_later(self._send_timeout, self._watch)
        try:
            while not self.closed.is_set():
                await self._wake.wait()
                self._wake.clear()
                if self.closed.is_set():
                    return
                if not self._snapshot and not self._messages and not self._prices:
                    continue
                parts = [*self._snapshot, *self._messages, *self._prices.values()]
                self._snapshot = []
                self._messages.clear()
                self._prices.clear()
                frame = "[" + ",".join(parts) + "]"
                oldest, self._oldest = self._oldest, None
                self._sending_since = loop.time()
                try:
                    await self._send_text(frame)
                except asyncio.CancelledError:
                    if self.close_reason != SEND_TIMED_OUT:
                        raise
                    return
                self._sending_since = None
                if oldest is not None:
                    WS_SEND.observe(loop.time() - oldest)
        finally:
            self._watchdog.cancel()

    def _watch(self) -> None:
        """Drop the client when its current send has taken the send timeout; else look again later."""
        loop = asyncio.get_running_loop()
        since = self._sending_since
        if since is not None and loop.time() - since >= self._send_timeout:
            self.drop(SEND_TIMED_OUT)
            if self._writer is not None:
                self._writer.cancel()
            return
        delay = self._send_timeout if since is None else since + self._send_timeout - loop.time()
        self._watchdog = loop.call_later(delay, self._watch)


class Hub:
    def __init__(self, redis: Redis, max_backlog: int, send_timeout: float):
        self.redis = redis
        self.max_backlog = max_backlog
        self.send_timeout = send_timeout
        self.clients: set[Client] = set()
        self.connected = asyncio.Event()
        self.delivered = 0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        relax_young_gc()
        self._task = asyncio.create_task(self._listen_forever())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for client in list(self.clients):
            client.drop("server shutting down")

    def add(self, send_text: SendText) -> Client:
        client = Client(send_text, self.max_backlog, self.send_timeout)
        self.clients.add(client)
        return client

    def remove(self, client: Client) -> None:
        self.clients.discard(client)
        client.drop(client.close_reason or "closed")

    def broadcast(self, raw: bytes) -> None:
        """Route one pub/sub message to every matching client: a message, or an engine batch's
        messages as a JSON array (each is decoded and encoded once, shared by all clients)."""
        decoded = orjson.loads(raw)
        if isinstance(decoded, list):
            for message in decoded:
                self._route(message, orjson.dumps(message).decode())
        else:
            self._route(decoded, raw.decode())

    def _route(self, message: dict, text: str) -> None:
        kind = message.get("type")
        series = None
        if kind == "price":
            series = keys.series_key(message["commodity"], message["market"])
        arrived = asyncio.get_running_loop().time()  # once per message, not per client
        for client in self.clients:
            if "commodity" in message and not client.filter.matches(message):
                continue
            if series is not None:
                client.offer_price(series, text, arrived)
            else:
                client.offer(text, arrived)
        self.delivered += len(self.clients)

    async def _listen_forever(self) -> None:
        backoff = 0.2
        lost = False
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(keys.EVENTS)
                self.connected.set()
                backoff = 0.2
                if lost:
                    # Clients may have missed messages while the feed was down: they resubscribe
                    # with the last alert id they saw and get a fresh snapshot.
                    for client in self.clients:
                        client.offer(RESYNC)
                    lost = False
                async for item in pubsub.listen():
                    if item.get("type") == "message":
                        self.broadcast(item["data"])
            except asyncio.CancelledError:
                await _close_quietly(pubsub)
                raise
            except (RedisError, OSError) as exc:
                self.connected.clear()
                lost = True
                log.warning("pub/sub connection lost (%s); retrying in %.1fs", exc, backoff)
                await _close_quietly(pubsub)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


RESYNC = orjson.dumps({"type": "resync", "reason": "server lost its feed; subscribe again with since"}).decode()


async def _close_quietly(pubsub) -> None:
    try:
        await pubsub.aclose()
    except (RedisError, OSError, RuntimeError):
        pass
