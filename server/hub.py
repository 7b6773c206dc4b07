"""Fan-out of price, alert and health messages from Redis pub/sub to this process's clients.

Each web process holds ONE subscription to ``pw:events``. A message arrives already encoded by
the engine; the hub reads its routing fields once, decodes it to text once, and hands the same
string to every matching client. Each client has a bounded backlog: prices are conflated per
series (a newer price replaces an unsent older one), alerts and other messages are never
dropped, and a client whose backlog of those overflows, or whose send stalls, is disconnected
rather than allowed to slow the others. A client's whole backlog goes out as one frame (a JSON
array), so a burst costs one send per client, not one per message.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from server import keys

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


class SlowClient(Exception):
    """The client's backlog of undroppable messages overflowed."""


class Client:
    """One WebSocket client's backlog and the task that writes it out."""

    def __init__(self, send_text: SendText, max_backlog: int, send_timeout: float):
        self.filter = Filter()
        self._send_text = send_text
        self._max_backlog = max_backlog
        self._send_timeout = send_timeout
        self._prices: dict[str, str] = {}
        self._messages: deque[str] = deque()
        self._wake = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_reason = ""

    def offer_price(self, series: str, text: str) -> None:
        self._prices.pop(series, None)  # re-insert so the newest price goes out last
        self._prices[series] = text
        self._wake.set()

    def offer(self, text: str) -> None:
        if len(self._messages) >= self._max_backlog:
            self.drop("backlog of alerts overflowed")
            return
        self._messages.append(text)
        self._wake.set()

    def put_first(self, texts: list[str]) -> None:
        """Queue a snapshot ahead of everything; prices queued before it are older than it."""
        self._prices.clear()
        self._messages.extendleft(reversed(texts))
        self._wake.set()

    def drop(self, reason: str) -> None:
        if not self.closed.is_set():
            self.close_reason = reason
            self.closed.set()
            self._wake.set()

    async def write_forever(self) -> None:
        while not self.closed.is_set():
            await self._wake.wait()
            self._wake.clear()
            if self.closed.is_set():
                return
            if not self._messages and not self._prices:
                continue
            parts = list(self._messages)
            parts.extend(self._prices.values())
            self._messages.clear()
            self._prices.clear()
            frame = "[" + ",".join(parts) + "]"
            try:
                await asyncio.wait_for(self._send_text(frame), self._send_timeout)
            except asyncio.TimeoutError:
                self.drop("send timed out")
                return


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
        """Route one encoded message to every matching client (decoded once, shared by all)."""
        message = orjson.loads(raw)
        text = raw.decode()
        kind = message.get("type")
        series = None
        if kind == "price":
            series = keys.series_key(message["commodity"], message["market"])
        for client in self.clients:
            if "commodity" in message and not client.filter.matches(message):
                continue
            if series is not None:
                client.offer_price(series, text)
            else:
                client.offer(text)
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
