"""``GET /metrics``: counters and gauges in Prometheus' text format, for the operators' monitoring."""
from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server import keys
from server.access import REFUSED

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _line(name: str, value: float, labels: dict[str, str] | None = None) -> str:
    if labels:
        inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
        return f"{name}{{{inner}}} {value}"
    return f"{name} {value}"


async def metrics(request: Request) -> Response:
    redis = request.app.state.redis
    hub = request.app.state.hub
    pipe = redis.pipeline(transaction=False)
    pipe.get(keys.ACCEPTED)
    pipe.get(keys.PROCESSED)
    pipe.get(keys.ALERTS_RAISED)
    pipe.hgetall(REFUSED)
    pipe.hlen(keys.FIRING)
    pipe.xinfo_groups(keys.TICKS)
    pipe.get(keys.RULES_STATUS)
    accepted, processed, alerts, refused, firing, groups, rules = await pipe.execute(raise_on_error=False)
    backlog = 0
    if isinstance(groups, list):
        for group in groups:
            if group["name"] == keys.ENGINE_GROUP.encode():
                backlog = int(group["pending"])
    status = orjson.loads(rules) if isinstance(rules, bytes) else {}
    lines = [
        "# TYPE pasarwatch_ticks_accepted_total counter",
        _line("pasarwatch_ticks_accepted_total", int(accepted or 0)),
        "# TYPE pasarwatch_ticks_processed_total counter",
        _line("pasarwatch_ticks_processed_total", int(processed or 0)),
        "# TYPE pasarwatch_ticks_pending gauge",
        _line("pasarwatch_ticks_pending", backlog),
        "# TYPE pasarwatch_alert_events_total counter",
        _line("pasarwatch_alert_events_total", int(alerts or 0)),
        "# TYPE pasarwatch_alerts_firing gauge",
        _line("pasarwatch_alerts_firing", int(firing or 0) if isinstance(firing, int) else 0),
        "# TYPE pasarwatch_refused_total counter",
    ]
    for reason, count in sorted((refused or {}).items() if isinstance(refused, dict) else []):
        lines.append(_line("pasarwatch_refused_total", int(count), {"reason": reason.decode()}))
    lines += [
        "# TYPE pasarwatch_rules_reload_failures_total counter",
        _line("pasarwatch_rules_reload_failures_total", int(status.get("reload_failures", 0))),
        "# TYPE pasarwatch_rules_ok gauge",
        _line("pasarwatch_rules_ok", 1 if status.get("ok") else 0),
        "# TYPE pasarwatch_ws_clients gauge",
        _line("pasarwatch_ws_clients", len(hub.clients)),
        "# TYPE pasarwatch_ws_messages_delivered_total counter",
        _line("pasarwatch_ws_messages_delivered_total", hub.delivered),
    ]
    return Response("\n".join(lines) + "\n", media_type=CONTENT_TYPE)
