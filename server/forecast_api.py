"""``GET /api/v1/forecast``: the online model's forecast of a series, with a prediction interval.

The engine checkpoints each series' detector state in its partition's ``state_series`` hash
(``pw:{pN}:state:series``, field ``commodity/market``, a state document of detectors/state.py,
never a pickle: whoever can write to Redis must not run code here); this handler reads it and
asks the forecast detector (detectors/forecast.py: exponential smoothing on log-price) for the
next ``horizon`` ticks.
The interval is the model's own: ``level ± 1.96`` residual scales, widened with the horizon as
simple exponential smoothing's error variance grows. Each step's time is the last tick's plus
the series' usual gap between ticks. How much to trust the model: run
``pasarwatch backtest`` on recorded data, which reports its error next to the naive and
seasonal-naive baselines.

``steps`` is that anomaly detector's band, and it loses to the last price; what to draw as a
forecast is ``forecasts``: detectors/forecast_horizons.py at 1, 7, 14 and 28 ticks, each with
its 80% and 95% conformal intervals and ``point_source``: ``model`` where the model beat the
last price when it was chosen (2019-2022), ``last price`` where it did not (then the point *is*
the last price and the interval is built around it). ``odds`` are the 14-tick probabilities that
the price passes the commodity's HAP/HET (``p_above_reference``, with the ``reference`` and its
``reference_kind``; absent without one) and that it rises 10% or more (``p_rise_10``);
``reported_daily`` False says the series is not reported about daily, unlike the data the odds
were calibrated on (on the monthly panel ``p_rise_10`` was worse than climatology).
"""
from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from detectors.ceiling import Reference, references
from detectors.forecast_horizons import HORIZONS
from detectors.series import SeriesState
from detectors.state import StateError, decode_state
from base import keys
from server.params import whole_number
from server.access import requires
from server.responses import ORJSONResponse, error
from stores import partitioned

MAX_HORIZON = 90
ODDS_HORIZON = 14
Z_95 = 1.96
# A series' state is about 10 KB; anything far larger was not written by the engine, and
# decoding it would hold the event loop.
MAX_STATE_BYTES = 1 << 20

log = logging.getLogger("pasarwatch.forecast")


def parse_query(params) -> tuple[str, str, int] | tuple[str, str]:
    """``(commodity, market, horizon)``, or ``(field, detail)`` of the first bad parameter.

    >>> parse_query({"commodity": "cabai-rawit-merah", "market": "pasar-agung"})
    ('cabai-rawit-merah', 'pasar-agung', 7)
    >>> parse_query({"commodity": "cabai-rawit-merah", "market": "pasar-agung", "horizon": "0"})
    ('horizon', 'horizon must be an integer between 1 and 90')
    """
    values = []
    for name in ("commodity", "market"):
        value = (params.get(name) or "").strip()
        if not value or "/" in value:
            return name, f"{name} is required (an id such as cabai-rawit-merah / pasar-agung)"
        values.append(value)
    horizon = whole_number(params.get("horizon") or "7")
    if horizon is None or not 1 <= horizon <= MAX_HORIZON:
        return "horizon", f"horizon must be an integer between 1 and {MAX_HORIZON}"
    return values[0], values[1], horizon


def forecast_body(commodity: str, market: str, horizon: int, series,
                  reference: Reference | None = None) -> dict:
    """The response body for a series' detector state (``SeriesState``) and the commodity's
    HAP/HET where it has one."""
    steps = series.forecast.forecast(horizon, Z_95)
    last = series.stale.last_seen
    gap = series.stale.expected_gap()
    for step in steps:
        step["ts"] = last + step["step"] * gap if last is not None and gap is not None else None
    return {
        "commodity": commodity,
        "market": market,
        "horizon": horizon,
        "interval": 0.95,
        "model": "exponential smoothing of log-price (detectors/forecast.py)",
        "last_ts": last,
        "step_seconds": gap,
        "warm": bool(steps),
        "steps": steps,
        **horizon_fields(series, reference, last, gap),
    }


def horizon_fields(series, reference: Reference | None, last: float | None, gap: float | None) -> dict:
    """``last_price``, ``forecasts`` (calibrated, per horizon) and ``odds`` of a series."""
    model = series.horizons
    forecasts = []
    for h in HORIZONS:
        made = model.predict(h)
        if made is None:
            continue
        uses_model = made.pop("model")
        made["ts"] = last + h * gap if last is not None and gap is not None else None
        made["point_source"] = "model" if uses_model else "last price"
        made["beats_last_price"] = uses_model
        forecasts.append(made)
    # The odds' recalibration was fitted on daily reports; on other series say so.
    odds: dict = {"horizon": ODDS_HORIZON, "reported_daily": model.reported_daily()}
    odds.update(model.odds(reference.value if reference is not None else None, ODDS_HORIZON))
    if reference is not None:
        odds.update(reference=reference.value, reference_kind=reference.kind)
    return {"last_price": model.last_price(), "forecasts": forecasts, "odds": odds}


def series_reference(catalog, commodity: str, market: str) -> Reference | None:
    """The commodity's HAP/HET for the market's province (the regional one where it differs)."""
    if catalog is None or commodity not in catalog.commodities:
        return None
    found = references([catalog.commodities[commodity]])
    place = catalog.markets.get(market)
    return found.get((commodity, place.province)) if place is not None and (commodity, place.province) in found \
        else found.get(commodity)


def read_series_state(blob: bytes) -> SeriesState:
    """A series' checkpointed detector state; StateError for anything else (nothing runs)."""
    if len(blob) > MAX_STATE_BYTES:
        raise StateError(f"{len(blob)} bytes, more than {MAX_STATE_BYTES}")
    return decode_state(blob, SeriesState)


@requires("read")
async def get_forecast(request: Request) -> Response:
    parsed = parse_query(request.query_params)
    if len(parsed) == 2:
        field, detail = parsed
        return error(422, field, "bad_query", detail)
    commodity, market, horizon = parsed
    key = keys.series_key(commodity, market)
    state_series = partitioned.of_series(request.app.state.partitions, commodity).state_series
    blob = await request.app.state.redis.hget(state_series, key)
    if blob is None:
        return error(404, "market", "unknown_series",
                     f"no detector state for series {key!r} (field {key} of {state_series})")
    try:
        series = read_series_state(blob)
    except StateError as exc:
        # Not this client's fault: the engine rewrites the state on the series' next tick.
        log.warning("unreadable detector state of %s: %s", key, exc)
        return error(503, "market", "state_unreadable",
                     f"the detector state of series {key!r} cannot be read; it is rebuilt on its next tick")
    reference = series_reference(getattr(request.app.state, "catalog", None), commodity, market)
    return ORJSONResponse(forecast_body(commodity, market, horizon, series, reference))


routes = [Route("/api/v1/forecast", get_forecast)]
