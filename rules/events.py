"""Alert events (the contract of docs/architecture.md and docs/rules.md) and their messages.

``transition`` says what happened to the alert, ``state`` what it is now:

=============  =========  ==================================================================
transition     state      meaning
=============  =========  ==================================================================
fired          firing     the alert started
escalated      firing     it moved to a higher rung of its ladder (new severity)
deescalated    firing     it moved to a lower rung, still firing
unmuted        firing     first notification of an alert that was muted (silenced, inhibited
                          or outside every route's window) when it fired
repeated       firing     a reminder, after a route's ``repeat_interval``
confirmed      firing     first notification of an alert held for confirmation (``confirm:``)
                          once a second source or market agrees
resolved       resolved   the alert ended
=============  =========  ==================================================================
"""
from __future__ import annotations

from typing import Any

from rules.model import Names, Rule
from rules.templates import Template, compile_template, duration_text, local_time, percent, rupiah

DEFAULT_FIRING = compile_template(
    "{summary}: {commodity_name} di {market_name}, {province_name}: {price_rp} ({change_pct} dari biasanya)")
DEFAULT_RESOLVED = compile_template(
    "Selesai: {summary}: {commodity_name} di {market_name}: {price_rp} (saat mulai {fired_price_rp}), "
    "berlangsung {duration}")
DEFAULT_HEALTH_FIRING = compile_template("{summary}: {commodity_name} di {market_name}, {province_name}")
DEFAULT_HEALTH_RESOLVED = compile_template("Selesai: {summary}: {commodity_name} di {market_name}")


def build_event(rule: Rule, key: str, transition: str, tick: dict, verdict: dict, state: Any,
                value: float | None, names: Names, use_template: bool = True) -> dict:
    """The alert event for ``transition``; ``state`` is the AlertState after the step.
    ``use_template=False`` takes the built-in message instead of the rule's own."""
    resolved = transition == "resolved"
    previous = state.event or {}
    rung = rule.rungs[state.top] if state.top >= 0 else None
    shown = rung or rule.rungs[min(max(previous_index(rule, previous), 0), len(rule.rungs) - 1)]
    ts = tick["ts"]
    event = {
        "type": "alert",
        "key": key,
        "rule": rule.name,
        "kind": rule.kind,
        "state": "resolved" if resolved else "firing",
        "transition": transition,
        "severity": shown.severity,
        "level": shown.level,
        "previous_severity": previous.get("severity") if transition in ("escalated", "deescalated") else None,
        "previous_level": previous.get("level") if transition in ("escalated", "deescalated") else None,
        "summary": rule.summary,
        "labels": dict(rule.labels),
        "commodity": tick["commodity"],
        "market": tick["market"],
        "province": tick.get("province", ""),
        "price": tick.get("price"),
        "fired_price": state.fired_price,
        "peak_price": state.peak_price,
        "value": value,
        "fired_value": state.fired_value,
        "peak_value": state.peak_value,
        "ts": ts,
        "started_at": state.started_at,
        "resolved_at": ts if resolved else None,
        "duration": ts - state.started_at if state.started_at is not None else None,
        "expected": verdict.get("expected") or previous.get("expected"),
        "detectors": list(previous.get("detectors", [])) if resolved else list(verdict.get("fired") or []),
        "reasons": dict(previous.get("reasons", {})) if resolved else dict(verdict.get("reasons") or {}),
        "quarantined": bool(verdict.get("quarantined")),
    }
    if not resolved:
        event["duration"] = None if transition == "fired" else event["duration"]
    if rule.kind == "health":
        event["health"] = tick.get("state")
        event["age"] = tick.get("age")
    template = _template(rule, transition) if use_template else _default_template(rule, transition)
    event["message"] = template.render(message_values(event, names))
    return event


def previous_index(rule: Rule, event: dict) -> int:
    levels = [rung.level for rung in rule.rungs]
    return levels.index(event["level"]) if event.get("level") in levels else -1


def _template(rule: Rule, transition: str) -> Template:
    template = rule.message(transition)
    if template is not None:
        return template
    return _default_template(rule, transition)


def _default_template(rule: Rule, transition: str) -> Template:
    if rule.kind == "health":
        return DEFAULT_HEALTH_RESOLVED if transition == "resolved" else DEFAULT_HEALTH_FIRING
    return DEFAULT_RESOLVED if transition == "resolved" else DEFAULT_FIRING


def message_values(event: dict, names: Names) -> dict[str, Any]:
    """What a message template can name (rules.templates.FIELDS), for one event."""
    commodity_name, unit = names.commodities.get(event["commodity"], (event["commodity"], ""))
    province_name, tz, abbr = names.provinces.get(event["province"], (event["province"], "Asia/Jakarta", "WIB"))
    expected = (event.get("expected") or {}).get("level")
    price = event.get("price")
    change = price / expected - 1.0 if isinstance(price, (int, float)) and expected else None
    return {
        "rule": event["rule"], "summary": event["summary"] or event["rule"], "state": event["state"],
        "transition": event["transition"], "severity": event["severity"], "level": event["level"],
        "previous_level": event.get("previous_level"),
        "commodity": event["commodity"], "commodity_name": commodity_name,
        "market": event["market"], "market_name": names.markets.get(event["market"], event["market"]),
        "province": event["province"], "province_name": province_name, "unit": unit,
        "price": price, "price_rp": rupiah(price),
        "fired_price": event.get("fired_price"), "fired_price_rp": rupiah(event.get("fired_price")),
        "peak_price": event.get("peak_price"), "peak_price_rp": rupiah(event.get("peak_price")),
        "expected": expected, "expected_rp": rupiah(expected),
        "change": change, "change_pct": percent(change),
        "value": event.get("value"), "fired_value": event.get("fired_value"), "peak_value": event.get("peak_value"),
        "age": event.get("age"),
        "detectors": ", ".join(event.get("detectors") or ()) or None,
        "reasons": "; ".join((event.get("reasons") or {}).values()) or None,
        "started": local_time(event.get("started_at"), tz, abbr),
        "at": local_time(event.get("ts"), tz, abbr),
        "duration": duration_text(event.get("duration")),
    }
