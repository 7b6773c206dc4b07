"""Who hears of an alert: receivers and a routing tree, Alertmanager-style, as pure functions.

The tree's root matches every alert. An alert goes down into the first child route whose
``matchers`` all match; with ``continue: true`` it also tries the next siblings. The deepest
routes reached deliver to their ``receiver``. ``receiver``, ``group_by``, ``group_wait``,
``group_interval`` and ``repeat_interval`` are inherited from the parent; ``active_time`` and
``quiet_time`` (names of ``time_windows``) belong to the route that states them. Outside its
active windows, or inside a quiet one, a route holds the alert until the window opens
(``deliver_at``), or drops it with ``when_quiet: drop``.

``Router.route(event, now)`` is what the rule engine calls for every alert event; the result is
put into the event's ``routes`` (see docs/rules.md) for the notification dispatcher.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from rules.durations import format_duration, parse_duration
from rules.errors import Problems
from rules.matchers import Matcher, MatcherError, alert_labels, match_all, parse_matchers
from rules.timewindows import DEFAULT_TIMEZONE, Window, WindowError, parse_window

RECEIVER_KEYS = {"name", "telegram", "topics"}
ROUTE_KEYS = {"receiver", "matchers", "continue", "group_by", "group_wait", "group_interval",
              "repeat_interval", "active_time", "quiet_time", "when_quiet", "routes"}
DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
ALL_LABELS = "..."


@dataclass(frozen=True)
class ReceiverConfig:
    """A named destination: fixed Telegram chats and/or the commodity's subscribers."""

    name: str
    telegram: tuple[int, ...] = ()
    topics: bool = False


@dataclass(frozen=True)
class Route:
    path: str
    receiver: str
    matchers: tuple[Matcher, ...] = ()
    continue_: bool = False
    group_by: tuple[str, ...] = ()
    group_wait: float = DEFAULT_GROUP_WAIT
    group_interval: float = DEFAULT_GROUP_INTERVAL
    repeat_interval: float | None = None
    active_time: tuple[str, ...] = ()
    quiet_time: tuple[str, ...] = ()
    when_quiet: str = "hold"
    routes: tuple[Route, ...] = ()


@dataclass(frozen=True)
class Receiver:
    """One delivery an alert event gets: the routing result the dispatcher consumes."""

    name: str
    route: str
    telegram: tuple[int, ...]
    topics: bool
    group_key: str
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float | None
    deliver_at: float | None = None  # None: now; else held until a time window opens

    def as_json(self) -> dict:
        return {"name": self.name, "route": self.route, "telegram": list(self.telegram),
                "topics": self.topics, "group_key": self.group_key, "group_by": list(self.group_by),
                "group_wait": self.group_wait, "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval, "deliver_at": self.deliver_at}


@dataclass(frozen=True)
class Router:
    root: Route | None
    receivers: dict[str, ReceiverConfig] = field(default_factory=dict)
    windows: dict[str, Window] = field(default_factory=dict)
    timezones: dict[str, str] = field(default_factory=dict)  # province code -> IANA zone

    def route(self, event: dict, now: float) -> list[Receiver]:
        """The receivers of ``event`` at time ``now`` (dropped quiet routes left out)."""
        if self.root is None:
            return []
        labels = alert_labels(event)
        tz = self.timezones.get(labels["province"], DEFAULT_TIMEZONE)
        result = []
        for route in _matching(self.root, labels) or [self.root]:
            deliver_at = self._deliver_at(route, now, tz)
            if deliver_at is None:
                continue  # quiet, and this route drops what arrives while quiet
            config = self.receivers[route.receiver]
            result.append(Receiver(
                name=config.name, route=route.path, telegram=config.telegram, topics=config.topics,
                group_key=_group_key(route, labels), group_by=route.group_by,
                group_wait=route.group_wait, group_interval=route.group_interval,
                repeat_interval=route.repeat_interval, deliver_at=None if deliver_at <= now else deliver_at,
            ))
        return result

    def has_repeat(self) -> bool:
        """Whether any route sends reminders (``repeat_interval``)."""
        stack = [self.root] if self.root else []
        while stack:
            route = stack.pop()
            if route.repeat_interval:
                return True
            stack.extend(route.routes)
        return False

    def _deliver_at(self, route: Route, now: float, tz: str) -> float | None:
        """``now`` if the route may deliver now, the time it may, or None to drop."""
        t = now
        for _ in range(16):  # windows are few; each step moves to a boundary
            moved = False
            active = [self.windows[name] for name in route.active_time]
            if active and not any(w.is_open(t, tz) for w in active):
                opens = [o for o in (w.next_open(t, tz) for w in active) if o is not None]
                if not opens:
                    return None
                t, moved = min(opens), True
            quiet = [self.windows[name] for name in route.quiet_time if self.windows[name].is_open(t, tz)]
            if quiet:
                t, moved = max(w.closes_at(t, tz) for w in quiet), True
            if not moved:
                break
        if t > now and route.when_quiet == "drop":
            return None
        return t


def _matching(route: Route, labels: dict[str, str]) -> list[Route]:
    """The deepest matching routes below ``route`` (not ``route`` itself)."""
    found: list[Route] = []
    for child in route.routes:
        if not match_all(child.matchers, labels):
            continue
        found.extend(_matching(child, labels) or [child])
        if not child.continue_:
            break
    return found


def _group_key(route: Route, labels: dict[str, str]) -> str:
    if ALL_LABELS in route.group_by:
        names = sorted(labels)
    else:
        names = list(route.group_by)
    return f"{route.path}:{route.receiver}:{{" + ",".join(f'{n}="{labels.get(n, "")}"' for n in names) + "}"


def routes_json(receivers: list[Receiver]) -> dict:
    """The event's ``routes``: chats and topics to notify now, and every receiver in full."""
    now = [r for r in receivers if r.deliver_at is None]
    return {
        "telegram": sorted({chat for r in now for chat in r.telegram}),
        "topics": any(r.topics for r in now),
        "receivers": [r.as_json() for r in receivers],
    }


# --- parsing ------------------------------------------------------------------------------------

def parse_receivers(value: Any, problems: Problems, node: Any) -> dict[str, ReceiverConfig]:
    receivers: dict[str, ReceiverConfig] = {}
    if not isinstance(value, list):
        problems.add(node, "receivers", "receivers must be a list of {name, telegram, topics}")
        return receivers
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            problems.add(value, index, "each receiver is a mapping with name, telegram and/or topics")
            continue
        name = item.get("name")
        for key in sorted(set(item) - RECEIVER_KEYS, key=str):
            problems.add(item, key, f"receiver: unknown key {key!r} (known: {', '.join(sorted(RECEIVER_KEYS))})")
        if not isinstance(name, str) or not name:
            problems.add(item, "name", "receiver: name is required")
            continue
        if name in receivers:
            problems.add(item, "name", f"receiver {name!r} is defined twice")
        chats = item.get("telegram") or []
        if not isinstance(chats, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in chats):
            problems.add(item, "telegram", f"receiver {name!r}: telegram must be a list of numeric chat ids")
            chats = []
        topics = item.get("topics", False)
        if not isinstance(topics, bool):
            problems.add(item, "topics", f"receiver {name!r}: topics must be true or false")
            topics = False
        receivers[name] = ReceiverConfig(name, tuple(chats), topics)
    return receivers


def parse_windows(value: Any, problems: Problems, node: Any) -> dict[str, Window]:
    windows: dict[str, Window] = {}
    if not isinstance(value, dict):
        problems.add(node, "time_windows", "time_windows must map names to lists of intervals")
        return windows
    for name, item in value.items():
        try:
            windows[str(name)] = parse_window(item)
        except WindowError as exc:
            problems.add(value, name, f"time window {name!r}: {exc}")
    return windows


def parse_route(value: Any, problems: Problems, node: Any, receivers: dict[str, ReceiverConfig],
                windows: dict[str, Window], parent: Route | None = None, path: str = "root",
                check_names: bool = True) -> Route | None:
    """The routing tree; ``check_names=False`` leaves receivers and windows that are not among
    those given unreported (another file that defines them could not be read)."""
    if not isinstance(value, dict):
        problems.add(node, "route", f"route {path}: must be a mapping")
        return None
    label = f"route {path}"
    for key in sorted(set(value) - ROUTE_KEYS, key=str):
        problems.add(value, key, f"{label}: unknown key {key!r} (known: {', '.join(sorted(ROUTE_KEYS))})")
    receiver = value.get("receiver", parent.receiver if parent else None)
    if not isinstance(receiver, str) or (receiver not in receivers and (check_names or not receiver)):
        known = ", ".join(sorted(receivers)) or "none defined"
        problems.add(value, "receiver", f"{label}: receiver {receiver!r} is not a defined receiver ({known})"
                     if receiver else f"{label}: the root route needs a receiver")
        receiver = receiver if isinstance(receiver, str) else ""
    matchers: tuple[Matcher, ...] = ()
    if "matchers" in value:
        if parent is None:
            problems.add(value, "matchers", "the root route matches every alert: it cannot have matchers")
        try:
            matchers = parse_matchers(value["matchers"])
        except MatcherError as exc:
            problems.add(value, "matchers", f"{label}: {exc}")
    cont = value.get("continue", False)
    if not isinstance(cont, bool):
        problems.add(value, "continue", f"{label}: continue must be true or false")
        cont = False
    group_by = value.get("group_by", list(parent.group_by) if parent else [])
    if not isinstance(group_by, list) or not all(isinstance(g, str) for g in group_by):
        problems.add(value, "group_by", f"{label}: group_by must be a list of label names (or ['...'])")
        group_by = []
    timings: dict[str, Any] = {}  # group_wait, group_interval: float; repeat_interval: float | None
    for key, default in (("group_wait", DEFAULT_GROUP_WAIT), ("group_interval", DEFAULT_GROUP_INTERVAL),
                         ("repeat_interval", None)):
        inherited = getattr(parent, key) if parent else default
        raw = value.get(key)
        if raw is None:
            timings[key] = inherited
            continue
        seconds = parse_duration(raw)
        if seconds is None or not math.isfinite(seconds):
            problems.add(value, key, f"{label}: {key} {raw!r} is not a duration like 30s, 5m, 4h, 1d")
            seconds = inherited
        timings[key] = seconds
    names = {}
    for key in ("active_time", "quiet_time"):
        raw = value.get(key, [])
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not all(isinstance(n, str) for n in items):
            problems.add(value, key, f"{label}: {key} must be a list of time window names")
            items = []
        for name in items:
            if name not in windows and check_names:
                problems.add(value, key, f"{label}: {key}: unknown time window {name!r} "
                                         f"(defined: {', '.join(sorted(windows)) or 'none'})")
        names[key] = tuple(n for n in items if n in windows)
    when_quiet = value.get("when_quiet", "hold")
    if when_quiet not in ("hold", "drop"):
        problems.add(value, "when_quiet", f"{label}: when_quiet must be hold or drop")
        when_quiet = "hold"
    route = Route(path=path, receiver=receiver, matchers=matchers, continue_=cont, group_by=tuple(group_by),
                  active_time=names["active_time"], quiet_time=names["quiet_time"], when_quiet=when_quiet,
                  **timings)
    children = value.get("routes", [])
    if not isinstance(children, list):
        problems.add(value, "routes", f"{label}: routes must be a list of routes")
        children = []
    built = []
    for index, child in enumerate(children):
        sub = parse_route(child, problems, children, receivers, windows, route, f"{path}.{index + 1}", check_names)
        if sub is not None:
            built.append(sub)
    return replace(route, routes=tuple(built))


def describe(route: Route, depth: int = 0) -> list[str]:
    """The tree as indented lines, for ``GET /api/v1/rules`` and ``rules check``."""
    parts = [f"{route.path}", f"-> {route.receiver}"]
    if route.matchers:
        parts.insert(1, "{" + ", ".join(str(m) for m in route.matchers) + "}")
    if route.continue_:
        parts.append("continue")
    if route.repeat_interval:
        parts.append(f"repeat {format_duration(route.repeat_interval)}")
    if route.active_time:
        parts.append("active " + ",".join(route.active_time))
    if route.quiet_time:
        parts.append("quiet " + ",".join(route.quiet_time))
    lines = ["  " * depth + " ".join(parts)]
    for child in route.routes:
        lines.extend(describe(child, depth + 1))
    return lines
