"""Cross-market check: is this market's price out of line with the other markets today?

One instance holds the panel of one commodity: the latest log-price of every market with its
timestamp, and each market's usual premium over the others (an EWMA, so a market that is always
5% dearer, or a market that sells a cheaper grade, is not flagged for being itself). A tick is
scored by how far its premium over the median of the other markets' fresh prices strays from
that market's usual premium, in units of the spread between the other markets (1.4826 * MAD, a
robust standard deviation, floored: on a day when the others agree to the rupiah the spread is
zero). When most markets move together the median moves with them, which is what tells a
market-wide move apart from a local entry error.

The panel keeps the latest price *seen* at each market (``observe``), quarantined or not; only
the usual premium is learned from accepted ticks alone (``learn_one``). A panel of accepted
prices only deadlocks in a fast market-wide move: each market that moves first is out of line
with the others' old prices, is quarantined, so the old prices stay, and the next market is
quarantined too (on the PIHPS chilli data, 2020-01-06: 14 of 18 markets in one day). One
entry error among the others barely moves their median, so seen prices are a safe reference.

>>> det = CrossMarket(threshold=4.0, min_markets=3, warmup=2)
>>> for day in range(3):
...     for market, price in [("a", 60000), ("b", 62000), ("c", 58000), ("d", 66000)]:
...         det.learn_one({"market": market, "price": price, "ts": 86400.0 * day})
>>> det.score_one({"market": "d", "price": 67000, "ts": 3 * 86400.0}) < det.threshold
True
>>> error = {"market": "a", "price": 387500, "ts": 3 * 86400.0}
>>> score = det.score_one(error)
>>> score >= det.threshold
True
>>> det.explain(error, score)
'Rp 387.500 is +525% vs median Rp 62.000 of 3 other markets (usually -3%), z=20.1'
"""
from __future__ import annotations

import math

from base.money import format_rupiah
from detectors.memo import Transient
from detectors.robust import center_and_spread

DAY = 86400.0


class CrossMarket(Transient):
    name = "crossmarket"

    def __init__(
        self,
        threshold: float = 4.0,
        min_markets: int = 3,
        max_age: float = 14 * DAY,
        min_scale: float = 0.03,
        premium_alpha: float = 0.05,
        warmup: int = 5,
    ):
        # max_age is two weeks because markets stop reporting together over long holidays
        # (11 days around Lebaran in the PIHPS data); a shorter age leaves the first market
        # back with no reference at all, right when prices have moved the most.
        self.threshold = threshold
        self.min_markets = min_markets
        self.max_age = max_age
        self.min_scale = min_scale
        self.premium_alpha = premium_alpha
        self.warmup = warmup
        self._latest: dict[str, tuple[float, float]] = {}
        self._premium: dict[str, float] = {}
        self._premium_n: dict[str, int] = {}

    # The stack asks for a tick's consensus, score and premium in turn, against the same other
    # markets: their prices and median are worked out once per (market, ts) until a price is
    # observed (detectors/memo.py).
    TRANSIENT = ("_memo",)
    _memo: list | None = None  # [(market, ts), others, (median, scale) or None]

    def _others(self, x: dict) -> list[float]:
        key = (x["market"], x["ts"])
        memo = self._memo
        if memo is not None and memo[0] == key:
            return memo[1]
        market = x["market"]
        oldest = x["ts"] - self.max_age
        others = [lp for m, (lp, ts) in self._latest.items() if m != market and ts >= oldest]
        self._memo = [key, others, None]
        return others

    def _judge(self, x: dict) -> tuple[float, float, float, int] | None:
        """(premium, median, scale, number of others) or None without enough fresh markets."""
        others = self._others(x)
        if len(others) < self.min_markets:
            return None
        memo = self._memo
        assert memo is not None  # set by _others
        if memo[2] is None:
            memo[2] = center_and_spread(others, self.min_scale)
        median, scale = memo[2]
        return math.log(x["price"]) - median, median, scale, len(others)

    def score_one(self, x: dict) -> float | None:
        if self._premium_n.get(x["market"], 0) < self.warmup:
            return None
        judged = self._judge(x)
        if judged is None:
            return None
        premium, _, scale, _ = judged
        return abs(premium - self._premium[x["market"]]) / scale

    def learn_one(self, x: dict) -> None:
        """Update the market's usual premium and record its price (an accepted tick)."""
        market = x["market"]
        judged = self._judge(x)
        if judged is not None:
            premium = judged[0]
            n = self._premium_n.get(market, 0) + 1
            # A running mean for the first ticks, then an EWMA: the first premium alone is noisy.
            weight = max(self.premium_alpha, 1.0 / n)
            usual = self._premium.get(market, premium)
            self._premium[market] = usual + weight * (premium - usual)
            self._premium_n[market] = n
        self.observe(x)

    def observe(self, x: dict) -> None:
        """Record the market's latest price as a reference for the others (any tick)."""
        market = x["market"]
        previous = self._latest.get(market)
        if previous is None or x["ts"] >= previous[1]:
            self._latest[market] = (math.log(x["price"]), x["ts"])
            self._memo = None

    def forget_premium(self, market: str) -> None:
        """Drop a market's usual premium, e.g. after accepting a real level shift there."""
        self._premium.pop(market, None)
        self._premium_n.pop(market, None)

    def consensus(self, x: dict) -> float | None:
        """Log-price the other markets suggest for this one: their median plus its usual premium
        (None without enough fresh markets or a learned premium); a forecast feature."""
        usual = self._premium.get(x["market"])
        if usual is None:
            return None
        judged = self._judge(x)  # its median is median(others), and the score needs it next
        return judged[1] + usual if judged is not None else None

    def usual_premium(self, market: str) -> float | None:
        return self._premium.get(market)

    def explain(self, x: dict, score: float) -> str:
        judged = self._judge(x)
        usual = self._premium.get(x["market"])
        if judged is None or usual is None:
            return f"z={score:.1f}"
        premium, median, _, count = judged
        return (
            f"{format_rupiah(x['price'])} is {math.expm1(premium):+.0%} vs median "
            f"{format_rupiah(math.exp(median))} of {count} other markets "
            f"(usually {math.expm1(usual):+.0%}), z={score:.1f}"
        )
