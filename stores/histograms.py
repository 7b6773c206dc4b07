"""Latency histograms written by every process and served by the web process at ``/metrics``.

The engine, the RQ workers and the web process each measure something an operator graphs, but
only the web process answers ``/metrics``. So each histogram lives in Redis as one hash
(``pw:metrics:hist:<name>``) of bucket counts, which a process adds to with ``HINCRBY`` in a
pipeline it is sending anyway (the engine: its commit), and which the web process reads and
renders (server/metrics.py). Counts are per bucket, not cumulative, so adding is one field per
observation; the renderer accumulates. The web process's own histograms (``LocalHistogram``)
stay in memory: they are served where they are measured.

Nothing here does I/O: ``record`` queues commands on a Redis pipeline the caller executes.

>>> h = LocalHistogram(TELEGRAM_SEND)
>>> for seconds in (0.04, 0.3, 0.3, 12.0, 100.0):
...     h.observe(seconds)
>>> h.cumulative()[:5], h.count, round(h.total, 2)
([('0.05', 1), ('0.1', 1), ('0.25', 1), ('0.5', 3), ('1.0', 3)], 5, 112.64)
>>> h.cumulative()[-1]
('+Inf', 5)
>>> commit_latencies(["1719800000000-0", "1719800000250-3"], now=1719800000.5)
[0.5, 0.25]
"""
from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass
from collections.abc import Iterable
from typing import Any

from base import keys

SUM = "sum"
INF = "+Inf"


@dataclass(frozen=True)
class Spec:
    """A histogram: its Prometheus name, HELP text and bucket upper bounds in seconds."""

    name: str
    help: str
    bounds: tuple[float, ...]

    @property
    def key(self) -> str:
        return keys.HISTOGRAM.of(name=self.name)

    @property
    def fields(self) -> tuple[str, ...]:
        """The hash field of each bucket, in order: its upper bound as Prometheus writes it."""
        return tuple(repr(float(b)) for b in self.bounds) + (INF,)

    def bucket(self, value: float) -> int:
        return bisect_left(self.bounds, value)


TICK_COMMIT = Spec(
    "pasarwatch_tick_commit_seconds",
    "Seconds from a tick's acceptance (the time in its stream id) to the engine's commit of its "
    "verdict, per tick: how far detection lags behind the feed.",
    (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0))
ENGINE_BATCH = Spec(
    "pasarwatch_engine_batch_seconds",
    "Seconds the engine spends on one batch of ticks, from reading it to committing it.",
    (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
WS_SEND = Spec(
    "pasarwatch_ws_publish_to_send_seconds",
    "Seconds from the web process receiving a published message to its frame being written to "
    "a /ws/prices client, per frame (its oldest message).",
    (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
TELEGRAM_SEND = Spec(
    "pasarwatch_telegram_send_seconds",
    "Seconds one Telegram sendMessage call takes, answered or failed.",
    (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
# Read from Redis by the web process; WS_SEND is measured in the web process itself. The
# Telegram one is kept in the notifications' Redis (RQ_REDIS_URL), the others in the data Redis.
DATA_SHARED = (TICK_COMMIT, ENGINE_BATCH)
NOTIFY_SHARED = (TELEGRAM_SEND,)
SHARED = DATA_SHARED + NOTIFY_SHARED


class LocalHistogram:
    """Bucket counts kept in memory: for the web process's own measurements, and to add a
    batch of observations to Redis in one step. Not thread-safe; the web process is asyncio."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.counts = [0] * (len(spec.bounds) + 1)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[self.spec.bucket(value)] += 1
        self.count += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        running, out = 0, []
        for field, count in zip(self.spec.fields, self.counts):
            running += count
            out.append((field, running))
        return out

    def add_to(self, pipe: Any) -> None:
        """Queue the counts on a Redis pipeline (sync or asyncio: queuing does no I/O)."""
        if not self.count:
            return
        for field, count in zip(self.spec.fields, self.counts):
            if count:
                pipe.hincrby(self.spec.key, field, count)
        pipe.hincrbyfloat(self.spec.key, SUM, self.total)


def record(pipe: Any, spec: Spec, values: Iterable[float]) -> None:
    """Queue observations of ``spec`` on a Redis pipeline."""
    local = LocalHistogram(spec)
    for value in values:
        local.observe(value)
    local.add_to(pipe)


def commit_latencies(tick_ids: Iterable[str], now: float) -> list[float]:
    """Seconds since each tick was accepted: a stream id starts with Redis' clock in ms when the
    tick was appended, which is when the client heard 202."""
    return [max(0.0, now - int(tick_id.split("-", 1)[0]) / 1000.0) for tick_id in tick_ids]


def engine_commit(pipe: Any, tick_ids: list[str], started: float) -> None:
    """The engine's measurements, queued on its commit pipeline: accept-to-commit per tick and
    the batch's duration since ``started`` (``time.perf_counter()`` when the batch was read).
    A commit without ticks (a feed-health sweep, a rules reload) is not a batch of ticks."""
    if not tick_ids:
        return
    record(pipe, TICK_COMMIT, commit_latencies(tick_ids, time.time()))
    record(pipe, ENGINE_BATCH, [time.perf_counter() - started])


def from_redis(spec: Spec, fields: dict[bytes, bytes] | None) -> LocalHistogram:
    """A histogram's counts as stored in its hash (empty when the hash is missing)."""
    histogram = LocalHistogram(spec)
    fields = fields or {}
    for i, field in enumerate(spec.fields):
        histogram.counts[i] = int(fields.get(field.encode(), 0))
    histogram.count = sum(histogram.counts)
    histogram.total = float(fields.get(SUM.encode(), 0.0))
    return histogram
