"""HTTP endpoints: tick ingest and the read APIs. Handlers only move bytes; logic lives elsewhere."""
from __future__ import annotations

import time

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server import params

from base import keys
from server.progress import partitions_progress, summary
from server.access import requires
from server.access import count_refusal, refuse
from server.responses import ORJSONResponse, error
from server.ticks import BodyError, parse_body
from stores import partitioned

MAX_LIMIT = 5000


class QueryError(ValueError):
    def __init__(self, field: str, detail: str):
        super().__init__(detail)
        self.field = field


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(name, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise QueryError(name, f"{name} must be between {low} and {high}")
    return value


def _list_param(request: Request, name: str) -> set[str]:
    values: set[str] = set()
    for raw in request.query_params.getlist(name):
        values.update(part for part in raw.split(",") if part)
    return values


def _stream_id_param(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    if params.stream_id(raw) is None:
        raise QueryError(name, f"{name} must be a stream id such as 1719800001234-0")
    return raw


@requires("ingest")
async def post_ticks(request: Request) -> Response:
    credential = request.state.credential
    settings = request.app.state.settings
    too_large = f"body above {settings.max_body_bytes} bytes"
    declared = params.whole_number(request.headers.get("content-length"))
    if declared is not None and declared > settings.max_body_bytes:
        return await refuse(request, 413, "body", "body_too_large", too_large)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > settings.max_body_bytes:
            return await refuse(request, 413, "body", "body_too_large", too_large)
    try:
        items = parse_body(bytes(body), request.headers.get("content-type", ""))
    except BodyError as exc:
        return await _refused(request, 422, {"errors": [exc.as_error()]})
    ingestor = request.app.state.ingestor
    refused = await ingestor.admit(items, credential, request.app.state.gate.bucket(credential))
    if refused:
        status, body, wait = refused
        headers = {"retry-after": str(max(1, round(wait)))} if wait else None
        # Ingestor.admit counts its rate_limited refusals itself (for /ws/ingest too).
        return await _refused(request, status, body, headers, already_counted=frozenset({"rate_limited"}))
    all_or_nothing = request.query_params.get("all_or_nothing", "").lower() in ("1", "true", "yes")
    status, result = await ingestor.ingest(items, credential, all_or_nothing)
    if status >= 400:
        return await _refused(request, status, result)
    return ORJSONResponse(result, status_code=status)


async def _refused(request: Request, status: int, body: dict, headers: dict | None = None,
                   already_counted: frozenset[str] = frozenset()) -> Response:
    await count_refusals(request.app.state.redis, body, already_counted)
    return ORJSONResponse(body, status_code=status, headers=headers)


async def count_refusals(redis, body: dict, already_counted: frozenset[str] = frozenset()) -> None:
    """Count the reasons of a refusal body (``{"errors": [{"reason": ...}]}``) for ``/metrics``:
    once per reason, so a batch of a thousand bad ticks costs a few counter updates, not a
    thousand. ``already_counted``: reasons the caller's own checks counted (rate_limited)."""
    reasons = {e.get("reason") for e in body.get("errors", ()) if isinstance(e, dict)}
    for reason in sorted(r for r in reasons if isinstance(r, str) and r not in already_counted):
        await count_refusal(redis, reason)


@requires("read")
async def get_catalog(request: Request) -> Response:
    return Response(request.app.state.catalog_json, media_type="application/json")


@requires("read")
async def get_series(request: Request) -> Response:
    wanted = {name: _list_param(request, name) for name in ("commodity", "province", "market")}
    series = []
    for raw in await partitioned.hash_values(request.app.state.redis, request.app.state.partitions, "latest"):
        message = orjson.loads(raw)
        if all(not values or message.get(name) in values for name, values in wanted.items()):
            series.append(message)
    series.sort(key=lambda m: (m["commodity"], m["market"]))
    return ORJSONResponse({"series": series})


@requires("read")
async def get_history(request: Request) -> Response:
    commodity, market = request.path_params["commodity"], request.path_params["market"]
    limit = _int_param(request, "limit", 500, 1, MAX_LIMIT)
    partition = partitioned.of_series(request.app.state.partitions, commodity)
    entries = await request.app.state.redis.xrevrange(partition.history(commodity, market), count=limit)
    points = [orjson.loads(fields[b"m"]) for _, fields in reversed(entries)]
    return ORJSONResponse({"commodity": commodity, "market": market, "points": points})


def _flag_param(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "").lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise QueryError(name, f"{name} must be true or false")


@requires("read")
async def get_alerts(request: Request) -> Response:
    """What is firing now (``state=firing``), or the event history (otherwise, or ``history=true``).

    The two differ: one alert that fired, escalated and repeated is three firing events in the
    history but one alert firing now, and an alert that resolved has firing events but is not
    firing. The current set is the engines' ``firing`` hashes (one per partition), one entry per
    alert key.
    """
    limit = _int_param(request, "limit", 200, 1, MAX_LIMIT)
    since = _stream_id_param(request, "since")
    history = _flag_param(request, "history")
    state = request.query_params.get("state")
    if state not in (None, "", "firing", "resolved"):
        raise QueryError("state", "state must be firing or resolved")
    wanted = {name: _list_param(request, name) for name in ("commodity", "province", "market", "severity")}
    if state == "firing" and not history:
        if since is not None:
            raise QueryError("since", "since reads the event history: add history=true, or drop since "
                                      "to get what is firing now")
        alerts = await read_firing(request.app.state.redis, request.app.state.partitions, limit, wanted)
    else:
        alerts = await read_alerts(request.app.state.redis, request.app.state.partitions, since, limit,
                                   state or None, wanted)
    return ORJSONResponse({"alerts": alerts})


async def read_firing(redis, partitions: list[keys.Partition], limit: int, wanted: dict[str, set[str]]) -> list[dict]:
    """The alerts firing now, one per key (its latest firing event), oldest first; the newest
    ``limit`` when there are more."""
    alerts = []
    for raw in await partitioned.hash_values(redis, partitions, "firing"):
        alert = orjson.loads(raw)
        if all(not values or alert.get(name) in values for name, values in wanted.items()):
            alerts.append(alert)
    alerts.sort(key=alert_order)
    return alerts[-limit:]


def alert_order(alert: dict) -> tuple[int, int]:
    """An alert's stream id as numbers, for ordering ("10-0" after "9-0", "5-11" after "5-3": the
    engines of P partitions number the alerts of one millisecond apart by P)."""
    ms, _, seq = str(alert.get("id", "")).partition("-")
    return params.whole_number(ms) or 0, params.whole_number(seq) or 0


async def read_alerts(redis, partitions: list[keys.Partition], since: str | None, limit: int,
                      state: str | None = None, wanted: dict[str, set[str]] | None = None) -> list[dict]:
    """Alerts after ``since`` (oldest first), or the newest ``limit`` when since is absent, from
    every partition's alert stream: an alert's id is unique across partitions and orders them."""
    wanted = wanted or {}

    def keep(alert: dict) -> bool:
        return (state is None or alert["state"] == state) and all(
            not values or alert.get(name) in values for name, values in wanted.items())

    alerts: list[dict] = []
    for partition in partitions:
        alerts.extend(await _read_stream(redis, partition.alerts, since, limit, keep))
    alerts.sort(key=alert_order)
    return alerts[:limit] if since is not None else alerts[-limit:]


async def _read_stream(redis, stream: str, since: str | None, limit: int, keep) -> list[dict]:
    """One partition's part of ``read_alerts``: at most ``limit`` kept alerts, oldest first."""
    alerts: list[dict] = []
    if since is None:
        cursor = "+"
        while len(alerts) < limit:
            entries = await redis.xrevrange(stream, max=cursor, count=500)
            for _entry_id, fields in entries:
                alert = orjson.loads(fields[b"a"])
                if keep(alert):
                    alerts.append(alert)
            if len(entries) < 500:
                break
            cursor = "(" + entries[-1][0].decode()
        return list(reversed(alerts[:limit]))
    cursor = "(" + since
    while len(alerts) < limit:
        entries = await redis.xrange(stream, min=cursor, count=500)
        for _entry_id, fields in entries:
            alert = orjson.loads(fields[b"a"])
            if keep(alert):
                alerts.append(alert)
        if len(entries) < 500:
            break
        cursor = "(" + entries[-1][0].decode()
    return alerts[:limit]


@requires("read")
async def get_sources(request: Request) -> Response:
    """Devices and sources whose reliability standing changed: suspect ones first.

    Each partition's engine judges the sources by the ticks it sees, so a source that reports
    several commodities has a standing in several partitions: the newest (by ``ts``) is shown."""
    newest: dict[bytes, dict] = {}
    for standings in await partitioned.hashes(request.app.state.redis, request.app.state.partitions, "sources"):
        for source, raw in standings.items():
            row = orjson.loads(raw)
            if source not in newest or float(row.get("ts") or 0) > float(newest[source].get("ts") or 0):
                newest[source] = row
    rows = list(newest.values())
    rows.sort(key=lambda r: (r["state"] != "suspect", r["source"]))
    return ORJSONResponse({"sources": rows})


@requires("read")
async def get_rules(request: Request) -> Response:
    status = await request.app.state.redis.get(keys.RULES_STATUS)
    if status is None:
        return error(503, "rules", "not_loaded", "the engine has not reported its rules yet")
    return Response(status, media_type="application/json")


async def healthz(request: Request) -> Response:
    return ORJSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    redis = request.app.state.redis
    checks = {"redis": False, "rules": False, "engine": False, "engine_progress": False,
              "feed": request.app.state.hub.connected.is_set()}
    detail: dict = {}
    try:
        checks["redis"] = bool(await redis.ping())
        status = await redis.get(keys.RULES_STATUS)
        checks["rules"] = status is not None and bool(orjson.loads(status).get("files") is not None)
        heartbeat = await redis.get(keys.ENGINE_HEARTBEAT)
        checks["engine"] = heartbeat is not None and time.time() - float(heartbeat) < 60
        progress = await partitions_progress(redis, request.app.state.partitions,
                                             request.app.state.settings.engine_stall)
        detail["engine"] = summary(progress)
        detail["partitions"] = progress
        checks["engine_progress"] = not detail["engine"]["stalled"]
    except Exception:  # noqa: BLE001 - readiness reports what failed instead of failing itself
        pass
    # Ready means ticks sent now will be scored: Redis and rules up, and no partition stuck on
    # waiting ticks, ownerless or with an owner that makes no progress (an engine that is merely
    # idle, or catching up, is fine).
    ready = checks["redis"] and checks["rules"] and checks["engine_progress"]
    return ORJSONResponse({"ready": ready, "checks": checks, **detail}, status_code=200 if ready else 503)
