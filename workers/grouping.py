"""When a group of alerts is notified: Alertmanager's group timers as pure functions, no I/O.

A group is one receiver's alerts that share the route's ``group_by`` label values (the
routing tree's ``group_key``). As in Alertmanager's dispatcher (``aggrGroup``):

- a new group is first flushed ``group_wait`` after its first alert arrived, so that alerts
  that come together go out as one message;
- after that the group's timer ticks every ``group_interval`` (counted from the first flush):
  a change (an alert new to the receiver, a changed severity, an alert resolving) is sent at
  the next tick, so a receiver hears of one group at most once per ``group_interval``;
- a group whose alerts did not change is sent again at the first tick at least
  ``repeat_interval`` after the last message, when the route sets one;
- a flush sends the group as it is: its firing alerts and those that resolved since the last
  message; resolved alerts then leave the group, and an empty group ends (the next alert
  starts a new one, with ``group_wait`` again);
- an alert that fires and resolves before anyone was told of it is dropped unsent.

A digest group (``digest=True``, for alert events that carry no routing receivers) is the
simple case: what arrives within ``group_wait`` goes out as one message, every event is news,
and the group ends at its flush.

Alert events arrive out of order when some were held by quiet hours: a group keeps the newest
event of each alert by stream id and ignores older ones.

>>> timing = Timing(group_wait=30, group_interval=300, repeat_interval=3600)
>>> fired = {"key": "k1", "id": "1-0", "state": "firing", "severity": "warning"}
>>> a = admit(None, timing, None, fired, now=1000.0)
>>> a.store, a.state.due
(True, 1030.0)
>>> plan = plan_flush(a.state, timing, [fired], now=1030.0)
>>> plan.kind, [e["key"] for e in plan.send], plan.state.due  # repeat at the first tick after 1h
('change', ['k1'], 4630.0)
>>> more = admit(plan.state, timing, None, {**fired, "key": "k2", "id": "2-0"}, now=1100.0)
>>> more.state.due  # the next group_interval tick, not group_wait
1330.0
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

RESOLVED = "resolved"


_Fallback = TypeVar("_Fallback", float, None)


@dataclass(frozen=True)
class Timing:
    group_wait: float
    group_interval: float
    repeat_interval: float | None = None

    @classmethod
    def of(cls, receiver: dict[str, Any], default: float) -> Timing:
        """A receiver's timings as the routing tree states them (``default`` for missing ones)."""
        def seconds(name: str, fallback: _Fallback) -> float | _Fallback:
            value = receiver.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
                return float(value)
            return fallback
        repeat = seconds("repeat_interval", None)
        return cls(seconds("group_wait", default), seconds("group_interval", default), repeat or None)

    def to_json(self) -> dict[str, Any]:
        return {"group_wait": self.group_wait, "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval}


@dataclass(frozen=True)
class GroupState:
    """What a group remembers between events: its timer and what its receiver was told."""

    created: float
    due: float | None = None  # when the group is flushed next; None: nothing to send
    anchor: float | None = None  # the first flush: group_interval ticks count from it
    last_sent: float | None = None
    flushes: int = 0
    told: dict[str, list[str]] = field(default_factory=dict)  # key -> [state, severity] last sent
    digest: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"created": self.created, "due": self.due, "anchor": self.anchor,
                "last_sent": self.last_sent, "flushes": self.flushes, "told": self.told,
                "digest": self.digest}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GroupState:
        return cls(created=float(data["created"]), due=data.get("due"),
                   anchor=data.get("anchor"), last_sent=data.get("last_sent"),
                   flushes=int(data.get("flushes") or 0), told=dict(data.get("told") or {}),
                   digest=bool(data.get("digest")))


@dataclass(frozen=True)
class Admission:
    state: GroupState | None  # None: the event starts no group (a resolve nobody heard of)
    store: bool  # whether the event replaces the group's copy of its alert


@dataclass(frozen=True)
class FlushPlan:
    kind: str | None  # "change", "repeat" or None (nothing to send)
    send: list[dict]  # the alert events of the message, oldest first
    drop: list[str]  # alert keys that leave the group
    state: GroupState | None  # None: the group is empty and ends


def stream_order(event_id: Any) -> tuple[int, int]:
    """Sort key of a stream id ``"ms-seq"`` (unknown shapes sort first)."""
    try:
        ms, _, seq = str(event_id).partition("-")
        return int(ms), int(seq or 0)
    except ValueError:
        return (-1, -1)


def signature(event: dict) -> list[str]:
    """What a receiver is told of an alert: a change of either is news."""
    return [str(event.get("state")), str(event.get("severity"))]


def next_tick(anchor: float | None, interval: float, at: float) -> float:
    """The group's first ``group_interval`` tick at or after ``at``."""
    if anchor is None or interval <= 0:
        return at
    if at <= anchor:
        return anchor
    return anchor + math.ceil((at - anchor) / interval - 1e-9) * interval


def is_news(state: GroupState | None, event: dict) -> bool:
    """Whether the receiver would learn something from ``event``."""
    if state is not None and state.digest:
        return True
    told = state.told.get(str(event.get("key"))) if state is not None else None
    if event.get("state") == RESOLVED:
        return told is not None and told[0] != RESOLVED  # a resolve is news to those told it fired
    return told != signature(event)


def admit(state: GroupState | None, timing: Timing, current: dict | None, event: dict,
          now: float, digest: bool = False) -> Admission:
    """Take ``event`` into the group (``current``: the group's copy of its alert, if any);
    ``digest`` makes a group that does not exist yet a digest group."""
    if current is not None and stream_order(event.get("id")) <= stream_order(current.get("id")):
        return Admission(state, False)  # an older event released late: the group knows better
    if state is None:
        if event.get("state") == RESOLVED and not digest:
            return Admission(None, False)
        return Admission(GroupState(created=now, due=now + timing.group_wait,
                                    digest=digest), True)
    if state.anchor is not None and is_news(state, event):  # before the first flush, group_wait runs
        tick = next_tick(state.anchor, timing.group_interval, now)
        if state.due is None or tick < state.due:
            state = replace(state, due=tick)
    return Admission(state, True)


def withdraw(state: GroupState, key: str) -> GroupState:
    """The alert leaves the group unannounced (muted, inhibited): told again once it is back."""
    told = {k: v for k, v in state.told.items() if k != key}
    return replace(state, told=told)


def plan_flush(state: GroupState, timing: Timing, alerts: list[dict], now: float) -> FlushPlan:
    """What the group's flush at ``now`` sends, and the group after it."""
    alerts = sorted(alerts, key=lambda e: stream_order(e.get("id")))
    if state.digest:
        return FlushPlan("change" if alerts else None, alerts, [str(e.get("key")) for e in alerts], None)
    firing = [e for e in alerts if e.get("state") != RESOLVED]
    resolved_told = [e for e in alerts if e.get("state") == RESOLVED and is_news(state, e)]
    changed = any(is_news(state, e) for e in firing) or bool(resolved_told)
    kind = None
    if changed and (firing or resolved_told):
        kind = "change"
    elif firing and timing.repeat_interval and state.last_sent is not None \
            and now >= state.last_sent + timing.repeat_interval - 1e-6:
        kind = "repeat"
    send = [e for e in alerts if e.get("state") != RESOLVED or e in resolved_told] if kind else []
    drop = [str(e.get("key")) for e in alerts if e.get("state") == RESOLVED]
    anchor = state.anchor if state.anchor is not None else now
    last_sent = now if kind else state.last_sent
    told = {str(e.get("key")): signature(e) for e in firing} if kind else {
        k: v for k, v in state.told.items() if k not in drop}
    if not firing:
        return FlushPlan(kind, send, drop, None)
    due = None
    if timing.repeat_interval and last_sent is not None:
        due = next_tick(anchor, timing.group_interval, last_sent + timing.repeat_interval)
    new = replace(state, due=due, anchor=anchor, last_sent=last_sent, told=told,
                  flushes=state.flushes + 1)
    return FlushPlan(kind, send, drop, new)
