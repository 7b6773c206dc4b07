"""The data one stage hands the next: a tick, a verdict, an alert event (docs/architecture.md).

Plain dicts at run time (orjson writes them as they are); these TypedDicts name their fields for
the signatures of the step and its callers, and let the type checker see a misspelt key.
"""
from __future__ import annotations

from typing import Any, TypedDict


class _TickRequired(TypedDict):
    commodity: str
    market: str
    price: float
    ts: float  # event time, epoch seconds (UTC)


class Tick(_TickRequired, total=False):
    """A normalised tick, as server/ticks.py makes it and pw:ticks stores it (field ``t``)."""

    province: str
    unit: str
    source: str | None
    seq: int | None
    received: float  # when the web process accepted it
    device: str  # the device's key name, when a device sent it
    id: str  # its pw:ticks stream id, once accepted


class _VerdictRequired(TypedDict):
    scores: dict[str, float]  # per warm detector, non-negative
    fired: list[str]  # the detectors whose score reached their threshold, sorted
    reasons: dict[str, str]  # per fired detector, words for people
    quarantined: bool  # kept out of the series' learning
    expected: dict[str, float | None] | None  # {"level", "lo", "hi"} once the forecast is warm


class Verdict(_VerdictRequired, total=False):
    """What the detectors say of one tick (``DetectorStack.process_batch``)."""

    classes: dict[str, str]  # ALPS and IPA class, once warm
    errors: dict[str, str]  # detector -> the failure it contained
    late: bool  # a late tick: judged by nothing (``pipeline.step.late_verdict``)
    odds: dict[str, float]  # breach odds at 14 ticks, once warm (detectors/forecast_horizons.py)


class _AlertRequired(TypedDict):
    type: str  # "alert"
    key: str  # rule/commodity/market: the alert's identity
    rule: str
    state: str  # "firing" or "resolved"
    transition: str  # fired, escalated, deescalated, unmuted, repeated, confirmed or resolved


class AlertEvent(_AlertRequired, total=False):
    """One transition of one alert, as the rules raise it (rules/events.py ``build_event``) and
    the engine appends it to pw:alerts; the engine adds ``id`` and the routing its ``routes``."""

    kind: str
    severity: str
    level: str
    commodity: str
    market: str
    province: str
    price: float | None
    ts: float
    started_at: float | None
    resolved_at: float | None
    expected: dict[str, float | None] | None
    detectors: list[str]
    reasons: dict[str, str]
    summary: str
    message: str
    routes: dict[str, Any]
    id: str
