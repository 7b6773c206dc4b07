"""``GET /metrics``: Pasarwatch's counters, gauges and latency histograms for Prometheus.

Several processes produce the numbers and this one serves them, so most values are read from
Redis on each scrape: counters the engine and the edges keep with ``INCRBY``/``HINCRBY``, and
the histograms of stores/histograms.py. The web process's own numbers (WebSocket clients,
messages delivered, publish-to-send) are read from memory. prometheus_client writes the
exposition (HELP, TYPE, escaping, histogram series), from metric families built per scrape
by a custom collector.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric,
)
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from stores import histograms, partitioned

from base import keys
from base.keys import Partition
from server.progress import partitions_progress
from server.access import REFUSED
from stores.histograms import LocalHistogram

# Measured in this process by the hub (server/hub.py): Hub code calls WS_SEND.observe(seconds).
WS_SEND = LocalHistogram(histograms.WS_SEND)
_SAME: Any = object()  # read()'s default: the notifications' Redis is the data Redis


class Snapshot(Collector):
    """Metric families already built; prometheus_client only writes them out."""

    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_text, value=value)


def gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def labelled_counter(name: str, help_text: str, label: str, counts: dict[str, int]) -> CounterMetricFamily:
    """One counter per value of ``label``, in a stable order."""
    return labelled(CounterMetricFamily(name, help_text, labels=[label]), counts)


def labelled_gauge(name: str, help_text: str, label: str, values: dict[str, float]) -> GaugeMetricFamily:
    """One gauge per value of ``label``, in a stable order."""
    return labelled(GaugeMetricFamily(name, help_text, labels=[label]), values)


def labelled(family, values: dict):
    for value, number in sorted(values.items(), key=lambda item: (len(item[0]), item[0])):
        family.add_metric([value], number)
    return family


def owners(progress: list[dict]) -> GaugeMetricFamily:
    """1 per partition with an owner, labelled with the engine holding its lease; none without."""
    family = GaugeMetricFamily("pasarwatch_partition_owner_info",
                               "The engine that owns a partition (holds its lease): 1, labelled with its id.",
                               labels=["partition", "owner"])
    for p in progress:
        if p["owner"] is not None:
            family.add_metric([str(p["partition"]), p["owner"]], 1)
    return family


def histogram(h: LocalHistogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(h.spec.name, h.spec.help, buckets=h.cumulative(), sum_value=h.total)


def families(values: dict, ws_clients: int, ws_delivered: int) -> list[Metric]:
    """Every metric, from the values read from Redis (see ``read``) and this process' own."""
    refused = labelled_counter(
        "pasarwatch_refused_total",
        "Requests and WebSocket messages refused with a 4xx, by the reason in the error body "
        "(once per reason per response; a batch with several refused ticks of one reason counts one).",
        "reason", values["refused"])
    errors = labelled_counter(
        "pasarwatch_engine_errors_total",
        "Failures the engine contained, by cause: detector:<name> and rule:<name> (skipped for one "
        "tick), engine:batch (a batch retried tick by tick), engine:deadletter (a tick moved to its "
        "partition's dead letters).",
        "cause", values["errors"])
    status = values["rules"]
    return [
        counter("pasarwatch_ticks_accepted_total", "Ticks appended to the stream and acknowledged (202).",
                values["accepted"]),
        counter("pasarwatch_ticks_processed_total", "Ticks the engine has judged and committed.",
                values["processed"]),
        gauge("pasarwatch_ticks_pending", "Ticks the engine has read but not yet committed.", values["pending"]),
        labelled_gauge("pasarwatch_partition_lag",
                       "Ticks of a partition its engine has not committed yet: read but not acknowledged, or "
                       "not read yet.", "partition", {str(p["partition"]): p["lag"] for p in values["partitions"]}),
        owners(values["partitions"]),
        gauge("pasarwatch_engines", "Engines alive: they renewed their partitions' leases within "
              "PASARWATCH_ENGINE_LEASE seconds.", values["engines"]),
        counter("pasarwatch_alert_events_total", "Alert events raised (firing, escalations, resolutions).",
                values["alerts"]),
        gauge("pasarwatch_alerts_firing", "Alerts firing now, one per alert key.", values["firing"]),
        refused,
        errors,
        counter("pasarwatch_ticks_deadlettered_total",
                "Ticks the engine could not process at all, moved to the dead letters for an operator.",
                values["deadlettered"]),
        counter("pasarwatch_rules_reload_failures_total", "Rule file changes refused because of an error.",
                status.get("reload_failures", 0)),
        gauge("pasarwatch_rules_ok", "1 when the last rules load succeeded, else 0.", 1 if status.get("ok") else 0),
        gauge("pasarwatch_ws_clients", "WebSocket clients connected to /ws/prices on this web process.",
              ws_clients),
        counter("pasarwatch_ws_messages_delivered_total",
                "Messages handed to /ws/prices clients' queues on this web process.", ws_delivered),
        *(histogram(h) for h in values["histograms"]),
        histogram(WS_SEND),
    ]


PER_PARTITION = ("accepted", "processed", "alerts_raised", "deadlettered", "firing", "errors")


async def read(redis, partitions: list[Partition], lease: float, now: float | None = None,
               notify: Any = _SAME) -> dict:
    """The values kept in Redis, the counters summed over the partitions; a missing or
    unreadable one reads as zero. ``lease``: an engine that renewed its leases less than that
    long ago is live. ``notify``: the notifications' Redis, where the Telegram histogram is kept
    (default: ``redis``; None: there is none)."""
    now = time.time() if now is None else now
    notify = redis if notify is _SAME else notify
    shared = histograms.SHARED if notify is redis else histograms.DATA_SHARED
    pipe = redis.pipeline(transaction=False)
    for partition in partitions:
        pipe.get(partition.accepted)
        pipe.get(partition.processed)
        pipe.get(partition.alerts_raised)
        pipe.get(partition.deadlettered)
        pipe.hlen(partition.firing)
        pipe.hgetall(partition.errors)
    pipe.hgetall(REFUSED)
    pipe.get(keys.RULES_STATUS)
    pipe.zcount(keys.ENGINES, f"({now - lease}", "+inf")
    for spec in shared:
        pipe.hgetall(spec.key)
    replies = await pipe.execute(raise_on_error=False)
    each, (refused, rules, engines, *stored) = replies[:len(PER_PARTITION) * len(partitions)], \
        replies[len(PER_PARTITION) * len(partitions):]
    sums = dict.fromkeys(PER_PARTITION[:-1], 0)
    errors: dict[str, int] = {}
    for start in range(0, len(each), len(PER_PARTITION)):
        values = dict(zip(PER_PARTITION, each[start:start + len(PER_PARTITION)]))
        for name in sums:
            sums[name] += partitioned.number(values[name])
        for cause, count in (values["errors"] if isinstance(values["errors"], dict) else {}).items():
            errors[cause.decode()] = errors.get(cause.decode(), 0) + int(count)
    progress = await partitions_progress(redis, partitions, float("inf"), now)
    return {
        "accepted": sums["accepted"], "processed": sums["processed"], "alerts": sums["alerts_raised"],
        "refused": {reason.decode(): int(count) for reason, count in refused.items()}
        if isinstance(refused, dict) else {},
        "errors": errors,
        "deadlettered": sums["deadlettered"],
        "firing": sums["firing"],
        "pending": sum(p["pending"] for p in progress),
        "partitions": progress,
        "engines": partitioned.number(engines),
        "rules": orjson.loads(rules) if isinstance(rules, bytes) else {},
        "histograms": [histograms.from_redis(spec, fields if isinstance(fields, dict) else None)
                       for spec, fields in zip(shared, stored)] + await _notify_histograms(notify, shared),
    }


async def _notify_histograms(notify: Any, read_already: tuple) -> list[LocalHistogram]:
    """The histograms of the notifications' Redis when it is another server. While that Redis is
    away they are left out: zeros would read to Prometheus as a counter reset."""
    found = []
    for spec in histograms.NOTIFY_SHARED:
        if spec in read_already:
            continue
        try:
            fields = await notify.hgetall(spec.key) if notify is not None else None
        except RedisError:
            continue
        found.append(histograms.from_redis(spec, fields))
    return found


def exposition(metric_families: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Snapshot(metric_families))
    return generate_latest(registry)


async def metrics(request: Request) -> Response:
    hub = request.app.state.hub
    values = await read(request.app.state.redis, request.app.state.partitions,
                        request.app.state.settings.engine_lease,
                        notify=request.app.state.notify)
    body = exposition(families(values, len(hub.clients), hub.delivered))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
