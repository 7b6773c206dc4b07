"""``GET /api/v1/references``: each series' price against the references an analyst uses.

For one commodity (and optionally one province) every series with a price gets its 3-month
average, its Lebaran-aligned level a year earlier and its HAP/HET, the deviation from each and
Badan Pangan's draft crisis criterion (detectors/references.py); so do each province (the daily
median over its markets) and the nation (over all markets). The prices are the series' stored
history (``pw:{pN}:hist:*`` of the commodity's partition, up to PASARWATCH_HISTORY_LEN messages
each); quarantined ticks (suspected entry errors) are left out of every average.

Reading is async and per series; decoding and computing run in a worker thread, so a commodity
with many markets does not hold the event loop. The body of a (commodity, province) is reused
while no series of it has a new latest price, and concurrent requests for it share one
computation.
"""
from __future__ import annotations

import asyncio

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from detectors.references import (
    CRISIS_DAYS,
    CRISIS_THRESHOLDS,
    MIN_DAYS,
    WINDOW_DAYS,
    Ceiling,
    combine,
    daily_prices,
    references_of,
)
from base.catalog import Catalog
from server.access import requires
from server.responses import error
from stores import partitioned


def _ceiling(catalog: Catalog, commodity: str, province: str | None) -> Ceiling | None:
    entry = catalog.commodities.get(commodity)
    value = entry.ceiling_for(province) if entry else None
    return Ceiling(float(value), entry.ceiling_kind or "HET") if entry and value else None


def _points(raw_messages: list[bytes]) -> list[tuple[float, float]]:
    points = []
    for raw in raw_messages:
        message = orjson.loads(raw)
        if (message.get("verdict") or {}).get("quarantined"):
            continue
        points.append((float(message["ts"]), float(message["price"])))
    return points


def compute(catalog: Catalog, commodity: str, province: str | None,
            series: list[tuple[dict, list[bytes]]]) -> dict:
    """The response body from each series' latest message and its raw history messages."""
    rows: list[dict] = []
    by_province: dict[str, list] = {}
    for latest, history in series:
        daily = daily_prices(_points(history))
        code = latest["province"]
        by_province.setdefault(code, []).append(daily)
        rows.append({"market": latest["market"], "province": code, "ts": latest["ts"],
                     "latest_price": latest["price"],
                     **references_of(daily, _ceiling(catalog, commodity, code))})
    provinces = [{"province": code, "markets": len(dailies),
                  **references_of(combine(dailies), _ceiling(catalog, commodity, code))}
                 for code, dailies in sorted(by_province.items())]
    everything = [daily for dailies in by_province.values() for daily in dailies]
    national = {"markets": len(everything), **references_of(combine(everything), _ceiling(catalog, commodity, None))}
    return {
        "commodity": commodity,
        "province": province,
        "window_days": WINDOW_DAYS,
        "min_days": MIN_DAYS,
        "crisis_thresholds": list(CRISIS_THRESHOLDS),
        "crisis_days": CRISIS_DAYS,
        "series": rows,
        "provinces": provinces,
        "national": national,
    }


class _Cache:
    """The last body per (commodity, province), valid while the latest message ids are the same."""

    def __init__(self) -> None:
        self.bodies: dict[tuple[str, str | None], tuple[tuple, bytes]] = {}
        self.locks: dict[tuple[str, str | None], asyncio.Lock] = {}

    def lock(self, key: tuple[str, str | None]) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())


@requires("read")
async def get_references(request: Request) -> Response:
    catalog: Catalog = request.app.state.catalog
    commodity = (request.query_params.get("commodity") or "").strip()
    if commodity not in catalog.commodities:
        return error(422, "commodity", "bad_query",
                     "commodity is required and must be a catalog commodity id (GET /api/v1/catalog)")
    province = (request.query_params.get("province") or "").strip() or None
    if province is not None and province not in catalog.provinces:
        return error(422, "province", "bad_query", "province must be a catalog province code (e.g. 32)")
    redis = request.app.state.redis
    latest = []
    partition = partitioned.of_series(request.app.state.partitions, commodity)
    for raw in (await redis.hgetall(partition.latest)).values():
        message = orjson.loads(raw)
        if message.get("commodity") == commodity and (province is None or message.get("province") == province):
            latest.append(message)
    latest.sort(key=lambda m: m["market"])
    key = (commodity, province)
    fingerprint = tuple(m["id"] for m in latest)
    cache = _cache(request.app)
    async with cache.lock(key):
        cached = cache.bodies.get(key)
        if cached is None or cached[0] != fingerprint:
            series = []
            limit = request.app.state.settings.history_len
            for message in latest:
                entries = await redis.xrevrange(partition.history(commodity, message["market"]), count=limit)
                series.append((message, [fields[b"m"] for _, fields in entries]))
            body = await asyncio.to_thread(lambda: orjson.dumps(compute(catalog, commodity, province, series)))
            cache.bodies[key] = cached = (fingerprint, body)
    return Response(cached[1], media_type="application/json")


def _cache(app) -> _Cache:
    # Keys are checked against the catalog, so the cache holds at most a body per commodity
    # and province (and per commodity nationally).
    cache = getattr(app.state, "references_cache", None)
    if cache is None:
        cache = app.state.references_cache = _Cache()
    return cache


routes = [Route("/api/v1/references", get_references)]
