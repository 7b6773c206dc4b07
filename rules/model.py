"""What a loaded rule set is made of: rules with their ladder rungs, scope, labels, templates,
and the routing tree and inhibition rules of the set. Plain frozen data; built by
``rules.loader``, used by ``rules.engine``."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from rules.expressions import Condition
from rules.inhibition import InhibitRule
from rules.routing import ReceiverConfig, Router
from rules.templates import Template

SEVERITIES = ("info", "warning", "critical")  # in rising order


@dataclass(frozen=True)
class Scope:
    """Globs per label; a pattern starting with ``!`` excludes (``["*", "!nasional"]``)."""

    commodity: tuple[str, ...] = ("*",)
    province: tuple[str, ...] = ("*",)
    market: tuple[str, ...] = ("*",)

    def matches(self, commodity: str, province: str, market: str) -> bool:
        return (
            _glob_any(commodity, self.commodity)
            and _glob_any(province, self.province)
            and _glob_any(market, self.market)
        )


@dataclass(frozen=True)
class Routes:
    """The per-rule shorthand ``routes: {telegram: [...], topics: bool}``: one extra receiver."""

    telegram: tuple[int, ...] = ()
    topics: bool = True

    def receiver(self, rule_name: str) -> ReceiverConfig:
        return ReceiverConfig(f"rule:{rule_name}", self.telegram, self.topics)


@dataclass(frozen=True)
class Rung:
    """One step of a severity ladder. ``enter``/``exit`` are None for a rule without a ladder:
    its ``when`` alone decides. Entered when the value reaches ``enter``; left when it falls
    below ``exit`` (hysteresis), each after ``for`` / ``keep_firing_for``."""

    severity: str
    level: str
    enter: float | None = None
    exit: float | None = None
    for_ticks: int = 1
    for_seconds: float = 0.0
    keep_ticks: int = 1
    keep_seconds: float = 0.0


@dataclass(frozen=True)
class Rule:
    name: str
    file: str
    line: int
    when: Condition | None
    kind: str = "tick"  # "tick": evaluated per price tick; "health": per feed-health change
    summary: str = ""
    severity: str = "warning"
    scope: Scope = field(default_factory=Scope)
    for_ticks: int = 1
    for_seconds: float = 0.0
    keep_ticks: int = 1
    keep_seconds: float = 0.0
    routes: Routes | None = None
    value: Condition | None = None
    rungs: tuple[Rung, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    messages: tuple[tuple[str, Template], ...] = ()
    # Severity from which a second source or market must confirm before anyone is told.
    confirm: str | None = None

    def __post_init__(self) -> None:
        if not self.rungs:  # a rule without a ladder is a ladder of one rung
            object.__setattr__(self, "rungs", (Rung(
                self.severity, self.severity, None, None, self.for_ticks, self.for_seconds,
                self.keep_ticks, self.keep_seconds),))

    def message(self, transition: str) -> Template | None:
        templates = dict(self.messages)
        if transition == "resolved":
            return templates.get("resolved")
        return templates.get(transition) or templates.get("firing")


@dataclass(frozen=True)
class Names:
    """Display names from the catalog, for message templates."""

    commodities: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (name, unit)
    markets: dict[str, str] = field(default_factory=dict)
    provinces: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # code -> (name, tz, abbr)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    files: tuple[str, ...]
    router: Router = field(default_factory=lambda: Router(None))
    inhibit: tuple[InhibitRule, ...] = ()
    names: Names = field(default_factory=Names)

    def by_name(self) -> dict[str, Rule]:
        return {rule.name: rule for rule in self.rules}


def _glob_any(value: str, patterns: tuple[str, ...]) -> bool:
    include = [p for p in patterns if not p.startswith("!")]
    if include and not any(p == "*" or fnmatch.fnmatchcase(value, p) for p in include):
        return False
    return not any(fnmatch.fnmatchcase(value, p[1:]) for p in patterns if p.startswith("!"))
