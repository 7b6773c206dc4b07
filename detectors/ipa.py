"""IPA: FAO GIEWS' Indicator of Price Anomalies, computed online per series.

FAO's IPA (Baquedano 2015, "Developing a price warning indicator as an early warning tool",
FAO GIEWS) asks whether prices grew unusually fast *for the season*: the compound quarterly
growth rate (CQGR) and the compound annual growth rate (CAGR) of the monthly price are each
standardised against the same season's rates in earlier years, then weighted:

    IPA = weight * (CQGR - mean_season) / std_season + (1 - weight) * (CAGR - mean) / std

FAO classifies IPA < 0.5 normal, 0.5..1 moderately high, >= 1 abnormally high; here those are
normal, stress and alert, and >= 2 is crisis (the ALPS scale's top class, for rules that want
one vocabulary). Two choices follow this project's rules rather than FAO's publication:

* the season of a price is its place in the Eid cycle (detectors/season.py: the cycle starts
  on Idul Fitri), not the Gregorian month, because Lebaran demand moves through the Gregorian
  calendar. Prices are kept per lunar dekad (a third of a lunar month, 36 per cycle); the
  "monthly price" at a dekad is the geometric mean over it and the two before (about one lunar
  month), so a month still in progress is compared with earlier months over the same span
  (calendar months would compare the first days of this month with whole earlier months);
* the season's mean and standard deviation come from earlier years only (FAO uses the whole
  sample, which includes the future of any past month). At least ``min_years`` earlier rates
  of the same season are needed, so the indicator starts in a series' third or fourth year.

The tick being scored counts in its own dekad. Growth rates are in log units per month (log of
compound growth). The score is the positive part of IPA. Dekads older than ``keep_years`` Eid
cycles are dropped, which bounds the checkpoint of a series.

>>> import math
>>> det = IPA()
>>> start = 1420081200.0  # 2015-01-01 10:00 WIB
>>> for day in range(0, 5 * 365, 3):
...     wobble = 0.05 * math.sin(2 * math.pi * day / 354.367)  # the same every Eid cycle
...     det.learn_one({"price": 20000.0 * math.exp(0.0001 * day + wobble), "ts": start + day * 86400.0})
>>> usual = {"price": 20000.0 * math.exp(0.0001 * 1827 + 0.05 * math.sin(2 * math.pi * 1827 / 354.367)),
...          "ts": start + 1827 * 86400.0}
>>> det.classify(det.score_one(usual))
'normal'
>>> for day in range(1827, 1857):  # a month at 1.5 times the usual price
...     ts = start + day * 86400.0
...     usual_level = 20000.0 * math.exp(0.0001 * day + 0.05 * math.sin(2 * math.pi * day / 354.367))
...     det.learn_one({"price": 1.5 * usual_level, "ts": ts})
>>> jump = {"price": usual["price"] * 1.5, "ts": start + 1857 * 86400.0}
>>> score = det.score_one(jump)
>>> det.classify(score), score >= det.threshold
('crisis', True)
"""
from __future__ import annotations

import math
from functools import lru_cache

from detectors.alps import classify
from detectors.memo import Transient
from detectors.season import local_day, lunar_dekad

CLASSES = ((2.0, "crisis"), (1.0, "alert"), (0.5, "stress"))
DEKADS_PER_MONTH, DEKADS_PER_YEAR = 3, 36
QUARTER, YEAR = 3, 12  # lunar months


@lru_cache(maxsize=4096)
def _dekad_at(ts: float) -> int:
    """The lunar dekad of a tick's time: the score and the learning of a tick, and every market
    reporting that day, ask for the same one."""
    return lunar_dekad(local_day(ts))


class IPA(Transient):
    name = "ipa"
    threshold = 1.0

    def __init__(self, weight: float = 0.4, min_years: int = 2, min_std: float = 0.005,
                 keep_years: int = 12):
        # weight is FAO's gamma on the quarterly rate; min_std (log units per month) keeps a
        # season whose past rates happen to agree from making every small change an anomaly.
        if not 0.0 <= weight <= 1.0:
            raise ValueError("weight must be in [0, 1]")
        self.weight = weight
        self.min_years = min_years
        self.min_std = min_std
        self.keep_years = keep_years
        self._dekads: dict[int, list[float]] = {}  # lunar dekad -> [sum of log-price, count]
        self._latest: int | None = None
        self._cache: dict[tuple[int, int], list[float]] = {}

    def _month(self, dekad: int, extra: float | None = None) -> float | None:
        """Mean log-price over the lunar month ending with ``dekad`` (plus ``extra`` in it)."""
        total, count = 0.0, 0.0
        for d in range(dekad - DEKADS_PER_MONTH + 1, dekad + 1):
            bucket = self._dekads.get(d)
            if bucket is not None:
                total += bucket[0]
                count += bucket[1]
        if extra is not None:
            total, count = total + extra, count + 1
        return total / count if count else None

    def _rate(self, dekad: int, months: int, extra: float | None = None) -> float | None:
        now = self._month(dekad, extra)
        then = self._month(dekad - months * DEKADS_PER_MONTH)
        if now is None or then is None:
            return None
        return (now - then) / months

    def _past_rates(self, dekad: int, months: int) -> list[float]:
        """Rates at the same point of earlier Eid cycles; those dekads are complete, so cached."""
        key = (dekad, months)
        cached = self._cache.get(key)
        if cached is None:
            cached = []
            oldest = min(self._dekads)
            back = dekad - DEKADS_PER_YEAR
            while back - months * DEKADS_PER_MONTH >= oldest:
                earlier = self._rate(back, months)
                if earlier is not None:
                    cached.append(earlier)
                back -= DEKADS_PER_YEAR
            self._cache[key] = cached
        return cached

    # Per (dekad, months): the mean log-price of the month ``months`` back and the (mean, std)
    # of the past rates, both over complete dekads, so worked out once and cleared with _cache
    # (detectors/memo.py).
    TRANSIENT = ("_memo",)
    _memo: tuple[dict, dict] | None = None

    def _standardised(self, dekad: int, months: int, now: float) -> float | None:
        """``_rate(dekad, months, extra)`` standardised, ``now`` being ``_month(dekad, extra)``."""
        if self._memo is None:
            self._memo = ({}, {})
        thens, spreads = self._memo
        key = (dekad, months)
        if key in thens:
            then = thens[key]
        else:
            then = thens[key] = self._month(dekad - months * DEKADS_PER_MONTH)
        if then is None:
            return None
        rate = (now - then) / months
        if key in spreads:
            spread = spreads[key]
        else:
            past = self._past_rates(dekad, months)
            n = len(past)
            if n < self.min_years:
                spread = None
            else:
                mean = sum(past) / n
                spread = mean, max(math.sqrt(sum((r - mean) ** 2 for r in past) / (n - 1)), self.min_std)
            spreads[key] = spread
        if spread is None:
            return None
        return (rate - spread[0]) / spread[1]

    def value(self, x: dict) -> float | None:
        """Signed IPA of a price (None until the season has enough earlier years)."""
        if not self._dekads:
            return None
        dekad = _dekad_at(x["ts"])
        now = self._month(dekad, math.log(x["price"]))  # the same month for both rates
        assert now is not None  # it holds the price
        quarterly = self._standardised(dekad, QUARTER, now)
        annual = self._standardised(dekad, YEAR, now)
        if quarterly is None or annual is None:
            return None
        return self.weight * quarterly + (1.0 - self.weight) * annual

    def score_one(self, x: dict) -> float | None:
        value = self.value(x)
        return None if value is None else max(value, 0.0)

    def learn_one(self, x: dict) -> None:
        dekad = _dekad_at(x["ts"])
        if dekad != self._latest:
            # A new dekad (or a late tick): cached past rates may involve it; old ones go.
            self._cache.clear()
            self._memo = None
            horizon = dekad - self.keep_years * DEKADS_PER_YEAR
            for old in [d for d in self._dekads if d < horizon]:
                del self._dekads[old]
        self._latest = dekad
        bucket = self._dekads.setdefault(dekad, [0.0, 0])
        bucket[0] += math.log(x["price"])
        bucket[1] += 1

    @staticmethod
    def classify(score: float | None) -> str:
        return classify(score, CLASSES)

    def explain(self, x: dict, score: float) -> str:
        return f"IPA {score:.2f} ({self.classify(score)}): growth unusually fast for the season"
