"""Commodity-wide surge: how far the typical market's price is above its own recent average.

One instance holds the panel of one commodity (as ``CrossMarket`` does): each market's last
``window`` accepted prices and its latest ratio of price to their mean. A tick's score is the
median, over the markets with a fresh ratio (within ``max_age``) and this tick's own, of
price / mean of that market's own last ``window`` prices: 1.2 means the median market is 20%
above its own average of the last ``window`` reports. Every market of the commodity reads the
same panel, so the markets that move first (the leaders) warn the ones that follow, and one
market's entry error barely moves the median. It is Badan Pangan's sustained-deviation idea
(a price well above its own recent average) taken over the whole panel; the rule that reads it
(``rules/kenaikan-serentak.yaml``) pairs it with the odds of passing the HAP/HET.

Not scored until ``min_markets`` markets have a ratio; a market's ratio needs ``min_history``
prices of its own first. Only accepted (not quarantined) ticks are learned.

The same panel also reads each price against its market's Lebaran-aligned level a year earlier
(detectors/references.py: the mean of its prices within 3 days of the day at the same distance
from Idul Fitri one Eid cycle before), and :class:`AlignedYear` serves the median market's ratio
as the detector ``year``: 1.3 means the median market is 30% above where it stood at the same
point of last year's season. A rise that only brings the price back to last year's seasonal
level says less than one that passes it (the spike rule reads both; docs/detection.md). Each
market keeps one sum and count per reporting day for ``YEAR_KEEP_DAYS``.

>>> surge = PanelSurge(window=10, min_history=5, min_markets=3)
>>> markets = ["a", "b", "c", "d"]
>>> for day in range(10):
...     for i, m in enumerate(markets):
...         x = {"market": m, "price": 40000.0 + 1000 * i, "ts": day * 86400.0}
...         _ = surge.score_one(x)
...         surge.learn_one(x)
>>> round(surge.score_one({"market": "a", "price": 40000.0, "ts": 10 * 86400.0}), 3)
1.0
>>> for i, m in enumerate(markets[:3]):  # three of four markets jump by 30%
...     surge.learn_one({"market": m, "price": 1.3 * (40000.0 + 1000 * i), "ts": 10 * 86400.0})
>>> score = surge.score_one({"market": "d", "price": 43000.0, "ts": 10 * 86400.0})
>>> score >= surge.threshold, round(score, 2)
(True, 1.3)
>>> surge.explain({"market": "d", "price": 43000.0, "ts": 10 * 86400.0}, score)
'the median market is +30% above its own average of the last 10 reports (4 markets)'

Ten days before Lebaran 2024 (10 April) three markets are 20% above where they stood ten
days before Lebaran 2023 (22 April):

>>> from datetime import datetime
>>> from detectors.season import WIB
>>> year = PanelSurge(min_markets=3)
>>> def at(day, month, y):
...     return datetime(y, month, day, 10, tzinfo=WIB).timestamp()
>>> for m in markets:
...     year.learn_one({"market": m, "price": 40000.0, "ts": at(12, 4, 2023)})
>>> for m in markets[1:]:
...     year.learn_one({"market": m, "price": 48000.0, "ts": at(31, 3, 2024)})
>>> aligned = AlignedYear(year)
>>> ratio = aligned.score_one({"market": "a", "price": 48000.0, "ts": at(31, 3, 2024)})
>>> round(ratio, 2), aligned.explain({"market": "a", "price": 48000.0, "ts": at(31, 3, 2024)}, ratio)
(1.2, 'the median market is +20% above its Lebaran-aligned level a year earlier (4 markets)')
"""
from __future__ import annotations

from collections import deque
from datetime import date
from functools import lru_cache

from detectors.lebaran import FIRST_YEAR, LAST_YEAR
from detectors.references import YEAR_HALF_WIDTH, aligned_day_a_year_earlier
from detectors.robust import median

DAY = 86400.0
# Days of daily sums a market keeps for its level a year earlier (an Eid cycle is 354 or 355 days).
YEAR_KEEP_DAYS = 420


WIB_OFFSET = 7 * 3600.0
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _day_ordinal(ts: float) -> int:
    """The ordinal of ``ts``'s local day in WIB (detectors/season.py ``local_day``, without a
    datetime per tick)."""
    return int((ts + WIB_OFFSET) // DAY) + EPOCH_ORDINAL


@lru_cache(maxsize=4096)
def _aligned_window(ordinal: int) -> tuple[int, ...] | None:
    """The ordinals of the days around a day's Lebaran-aligned day a year earlier; None outside
    the Idul Fitri table (detectors/lebaran.py), where computing the feast per tick would be slow."""
    day = date.fromordinal(ordinal)
    if not FIRST_YEAR < day.year < LAST_YEAR:
        return None
    aligned = aligned_day_a_year_earlier(day).toordinal()
    return tuple(range(aligned - YEAR_HALF_WIDTH, aligned + YEAR_HALF_WIDTH + 1))


class PanelSurge:
    name = "surge"

    def __init__(self, window: int = 30, threshold: float = 1.2, min_history: int = 15,
                 min_markets: int = 5, max_age: float = 14 * DAY):
        self.window = window
        self.threshold = threshold
        self.min_history = min_history
        self.min_markets = min_markets
        self.max_age = max_age
        self._history: dict[str, deque] = {}
        self._ratio: dict[str, tuple[float, float]] = {}
        self._init_year()

    def _init_year(self) -> None:
        # Per market: {day ordinal: [sum, count]} of accepted prices, and its latest year ratio.
        self._days: dict[str, dict[int, list[float]]] = {}
        self._year_ratio: dict[str, tuple[float, float]] = {}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "_days" not in state:  # a checkpoint written before the year level existed
            self._init_year()

    def _own(self, x: dict) -> float | None:
        """This tick's price over the mean of its market's last ``window`` learned prices."""
        history = self._history.get(x["market"])
        if history is None or len(history) < self.min_history or x["price"] <= 0.0:
            return None
        return x["price"] * len(history) / sum(history)

    def _own_year(self, x: dict) -> float | None:
        """This tick's price over its market's mean around the aligned day a year earlier."""
        days = self._days.get(x["market"])
        window = _aligned_window(_day_ordinal(x["ts"])) if days and x["price"] > 0.0 else None
        if window is None or days is None:
            return None
        total = count = 0.0
        for ordinal in window:
            found = days.get(ordinal)
            if found is not None:
                total += found[0]
                count += found[1]
        return x["price"] * count / total if count else None

    def _ratios(self, x: dict, latest: dict[str, tuple[float, float]] | None = None,
                own: float | None = None) -> list[float]:
        if latest is None:
            latest, own = self._ratio, self._own(x)
        oldest = x["ts"] - self.max_age
        ratios = [r for m, (r, ts) in latest.items() if m != x["market"] and ts >= oldest]
        if own is not None:
            ratios.append(own)
        return ratios

    def year_ratios(self, x: dict) -> list[float]:
        """Each fresh market's latest ratio to its level a year earlier, with this tick's own."""
        return self._ratios(x, self._year_ratio, self._own_year(x))

    def score_one(self, x: dict) -> float | None:
        """The median ratio of the panel with this tick in it; None while too few markets."""
        ratios = self._ratios(x)
        return median(ratios) if len(ratios) >= self.min_markets else None

    def learn_one(self, x: dict) -> None:
        own = self._own(x)
        if own is not None:
            self._ratio[x["market"]] = (own, x["ts"])
        history = self._history.get(x["market"])
        if history is None:
            history = self._history[x["market"]] = deque(maxlen=self.window)
        history.append(float(x["price"]))
        self._learn_day(x)

    def _learn_day(self, x: dict) -> None:
        own = self._own_year(x)
        if own is not None:
            self._year_ratio[x["market"]] = (own, x["ts"])
        days = self._days.setdefault(x["market"], {})
        today = _day_ordinal(x["ts"])
        entry = days.get(today)
        if entry is None:
            days[today] = [float(x["price"]), 1.0]
            # Days arrive in order: the oldest come first in the dict.
            while days and next(iter(days)) < today - YEAR_KEEP_DAYS:
                del days[next(iter(days))]
        else:
            entry[0] += float(x["price"])
            entry[1] += 1.0

    def explain(self, x: dict, score: float) -> str:
        return (f"the median market is {score - 1.0:+.0%} above its own average of the last "
                f"{self.window} reports ({len(self._ratios(x))} markets)")


class AlignedYear:
    """The ``year`` detector: a view of one commodity's :class:`PanelSurge`, whose state it reads
    (nothing of its own to learn or checkpoint). Fires at ``threshold`` (1.5: the median market
    50% above its level a year earlier); the spike rule reads the score."""

    name = "year"

    def __init__(self, surge: PanelSurge, threshold: float = 1.5):
        self.surge = surge
        self.threshold = threshold

    def score_one(self, x: dict) -> float | None:
        """The median ratio of the panel with this tick in it; None while too few markets."""
        ratios = self.surge.year_ratios(x)
        return median(ratios) if len(ratios) >= self.surge.min_markets else None

    def explain(self, x: dict, score: float) -> str:
        return (f"the median market is {score - 1.0:+.0%} above its Lebaran-aligned level a year "
                f"earlier ({len(self.surge.year_ratios(x))} markets)")
