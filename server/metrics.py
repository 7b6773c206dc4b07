"""``GET /metrics``: Pasarwatch's counters, gauges and latency histograms for Prometheus.

Several processes produce the numbers and this one serves them, so most values are read from
Redis on each scrape: counters the engine and the edges keep with ``INCRBY``/``HINCRBY``, and
the histograms of stores/histograms.py. The web process's own numbers (WebSocket clients,
messages delivered, publish-to-send) are read from memory. prometheus_client writes the
exposition (HELP, TYPE, escaping, histogram series), from metric families built per scrape
by a custom collector.
"""
from __future__ import annotations

from collections.abc import Iterable

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric,
)
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from stores import histograms

from base import keys
from server.access import REFUSED
from stores.histograms import LocalHistogram

# Measured in this process by the hub (server/hub.py): Hub code calls WS_SEND.observe(seconds).
WS_SEND = LocalHistogram(histograms.WS_SEND)


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
    family = CounterMetricFamily(name, help_text, labels=[label])
    for value, count in sorted(counts.items()):
        family.add_metric([value], count)
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
        "tick), engine:batch (a batch retried tick by tick), engine:deadletter (a tick moved to pw:deadletter).",
        "cause", values["errors"])
    status = values["rules"]
    return [
        counter("pasarwatch_ticks_accepted_total", "Ticks appended to the stream and acknowledged (202).",
                values["accepted"]),
        counter("pasarwatch_ticks_processed_total", "Ticks the engine has judged and committed.",
                values["processed"]),
        gauge("pasarwatch_ticks_pending", "Ticks the engine has read but not yet committed.", values["pending"]),
        counter("pasarwatch_alert_events_total", "Alert events raised (firing, escalations, resolutions).",
                values["alerts"]),
        gauge("pasarwatch_alerts_firing", "Alerts firing now, one per alert key.", values["firing"]),
        refused,
        errors,
        counter("pasarwatch_ticks_deadlettered_total",
                "Ticks the engine could not process at all, moved to pw:deadletter for an operator.",
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


async def read(redis) -> dict:
    """The values kept in Redis; a missing or unreadable one reads as zero."""
    pipe = redis.pipeline(transaction=False)
    pipe.get(keys.ACCEPTED)
    pipe.get(keys.PROCESSED)
    pipe.get(keys.ALERTS_RAISED)
    pipe.hgetall(REFUSED)
    pipe.hlen(keys.FIRING)
    pipe.xinfo_groups(keys.TICKS)
    pipe.get(keys.RULES_STATUS)
    pipe.hgetall(keys.ERRORS)
    pipe.get(keys.DEADLETTERED)
    for spec in histograms.SHARED:
        pipe.hgetall(spec.key)
    accepted, processed, alerts, refused, firing, groups, rules, errors, deadlettered, *stored = \
        await pipe.execute(raise_on_error=False)
    pending = 0
    if isinstance(groups, list):
        for group in groups:
            if group["name"] == keys.ENGINE_GROUP.encode():
                pending = int(group["pending"])
    return {
        "accepted": _number(accepted), "processed": _number(processed), "alerts": _number(alerts),
        "refused": {reason.decode(): int(count) for reason, count in refused.items()}
        if isinstance(refused, dict) else {},
        "errors": {cause.decode(): int(count) for cause, count in errors.items()}
        if isinstance(errors, dict) else {},
        "deadlettered": _number(deadlettered),
        "firing": firing if isinstance(firing, int) else 0,
        "pending": pending,
        "rules": orjson.loads(rules) if isinstance(rules, bytes) else {},
        "histograms": [histograms.from_redis(spec, fields if isinstance(fields, dict) else None)
                       for spec, fields in zip(histograms.SHARED, stored)],
    }


def _number(raw: object) -> int:
    return int(raw) if isinstance(raw, (bytes, str, int)) else 0


def exposition(metric_families: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Snapshot(metric_families))
    return generate_latest(registry)


async def metrics(request: Request) -> Response:
    hub = request.app.state.hub
    values = await read(request.app.state.redis)
    body = exposition(families(values, len(hub.clients), hub.delivered))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
