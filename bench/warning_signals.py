"""Signals the round-3 spike-warning candidates read that the production verdict does not carry.

Each is replayed offline over the verdicts one replay of the production stack recorded
(bench/warning_search.py), commodity by commodity and day by day, strictly online: a tick's
value uses only the ticks before it (and the earlier ticks of its own day, as the stack's panel
detectors do), and only accepted (not quarantined) ticks are learned. The signals are added to a
copy of each verdict's ``scores`` under their own names, so a candidate rule reads them as
``<name>.score``:

* ``trend<k>``: the commodity's surge (``surge.score``) minus its surge ``k`` reporting days
  earlier (the day's last surge score): the surge rising, to fire earlier on fast rises.
* ``year``: the median market's price against its own Lebaran-aligned level a year earlier
  (detectors/references.py: the mean of its prices within 3 days of the aligned day), as
  ``surge`` takes the median of each market's ratio to its own 30-report mean.
* ``season<w>``: 1 within ``w`` days before Idul Fitri or before Christmas (25 December),
  0 elsewhere: where a lower surge threshold may be worth its false alarms.
* ``avg3m``: the surge over 65 reports (about the 91 days of Badan Pangan's 3-month average),
  and ``held75`` / ``held125``: how many reporting days in a row (today included) the
  commodity's ``avg3m`` has been at least 7.5% / 12.5% above 1 (Badan Pangan's sustained
  deviation, taken over the panel as ``surge`` is).

>>> signals = Signals(trends=(1,), seasons=(30,))
>>> day = lambda d, price, surge: [({"commodity": "c", "market": m, "price": price * (1 + i / 10),
...                                  "ts": d * 86400.0}, {"scores": {"surge": surge}, "quarantined": False})
...                                 for i, m in enumerate("abcde")]
>>> out = [signals.day(day(d, 100.0, 1.0 + 0.1 * d)) for d in range(3)]
>>> round(out[2][0][1]["scores"]["trend1"], 3), "trend1" in out[0][0][1]["scores"]
(0.1, False)
"""
from __future__ import annotations

from collections import deque
from datetime import date, timedelta

from detectors.lebaran import days_from_idul_fitri
from detectors.references import YEAR_HALF_WIDTH, aligned_day_a_year_earlier
from detectors.season import local_day
from detectors.surge import PanelSurge

DAY = 86400.0
HELD = {"held75": 1.075, "held125": 1.125}


def days_before_christmas(day: date) -> int:
    """Days until the next 25 December (0 on the day)."""
    christmas = date(day.year, 12, 25)
    if christmas < day:
        christmas = date(day.year + 1, 12, 25)
    return (christmas - day).days


class PanelYear(PanelSurge):
    """The median market's price over its own Lebaran-aligned mean a year earlier: the panel of
    ``PanelSurge`` (median over the fresh markets), each market's ratio against that level."""

    name = "year"

    def __init__(self, min_markets: int = 5, max_age: float = 14 * DAY):
        super().__init__(min_markets=min_markets, max_age=max_age)
        self._daily: dict[str, dict[date, list[float]]] = {}

    def _own(self, x: dict) -> float | None:
        daily = self._daily.get(x["market"])
        if not daily:
            return None
        aligned = aligned_day_a_year_earlier(local_day(x["ts"]))
        prices = [p for offset in range(-YEAR_HALF_WIDTH, YEAR_HALF_WIDTH + 1)
                  for p in daily.get(aligned + timedelta(days=offset), ())]
        return x["price"] * len(prices) / sum(prices) if prices else None

    def _remember(self, x: dict) -> None:
        daily = self._daily.setdefault(x["market"], {})
        day = local_day(x["ts"])
        daily.setdefault(day, []).append(float(x["price"]))
        for old in [d for d in daily if d < day - timedelta(days=420)]:
            del daily[old]


class Signals:
    """The signals of one replay, fed one reporting day (its ``(tick, verdict)`` pairs) at a time."""

    def __init__(self, trends: tuple[int, ...] = (3, 5, 10), seasons: tuple[int, ...] = (30, 45, 60)):
        self.trends = trends
        self.seasons = seasons
        self._surge_days: dict[str, deque] = {}
        self._year: dict[str, PanelYear] = {}
        self._avg3m: dict[str, PanelSurge] = {}
        self._held: dict[str, dict[str, int]] = {}

    def day(self, pairs: list[tuple[dict, dict]]) -> list[tuple[dict, dict]]:
        out = []
        last_surge = None
        last_avg3m = None
        for tick, verdict in pairs:
            commodity = tick["commodity"]
            year = self._year.setdefault(commodity, PanelYear())
            avg3m = self._avg3m.setdefault(commodity, PanelSurge(window=65, min_history=20))
            held = self._held.setdefault(commodity, dict.fromkeys(HELD, 0))
            past = self._surge_days.setdefault(commodity, deque(maxlen=max(self.trends) + 1))
            scores = dict(verdict.get("scores") or {})
            x = {"market": tick["market"], "price": float(tick["price"]), "ts": float(tick["ts"])}
            surge = scores.get("surge")
            if surge is not None:
                last_surge = surge
                for k in self.trends:
                    if len(past) >= k:
                        scores[f"trend{k}"] = surge - past[-k]
            today = local_day(x["ts"])
            to_lebaran = -days_from_idul_fitri(today)
            for w in self.seasons:
                scores[f"season{w}"] = float(0 <= to_lebaran <= w or days_before_christmas(today) <= w)
            if x["price"] > 0:
                for name, detector in (("year", year), ("avg3m", avg3m)):
                    value = detector.score_one(x)
                    if value is not None:
                        scores[name] = value
                if "avg3m" in scores:
                    last_avg3m = scores["avg3m"]
                    for name, bar in HELD.items():
                        # Today counts when this tick's panel is above the bar.
                        scores[name] = float(held[name] + 1 if scores["avg3m"] >= bar else 0)
                if not verdict.get("quarantined"):
                    year.learn_one(x)
                    avg3m.learn_one(x)
            out.append((tick, {**verdict, "scores": scores}))
        if pairs:
            commodity = pairs[0][0]["commodity"]
            if last_surge is not None:
                self._surge_days[commodity].append(last_surge)
            if last_avg3m is not None:
                held = self._held[commodity]
                for name, bar in HELD.items():
                    held[name] = held[name] + 1 if last_avg3m >= bar else 0
        return out

    def names(self) -> set[str]:
        return ({f"trend{k}" for k in self.trends} | {f"season{w}" for w in self.seasons}
                | {"year", "avg3m"} | set(HELD))


def augment(days: list[list[tuple[dict, dict]]]) -> tuple[list[list[tuple[dict, dict]]], set[str]]:
    """The recorded days with every signal added to their verdicts, and the signals' names."""
    signals = Signals()
    return [signals.day(pairs) for pairs in days], signals.names()
