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
"""
from __future__ import annotations

from collections import deque

from detectors.robust import median

DAY = 86400.0


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

    def _own(self, x: dict) -> float | None:
        """This tick's price over the mean of its market's last ``window`` learned prices."""
        history = self._history.get(x["market"])
        if history is None or len(history) < self.min_history or x["price"] <= 0.0:
            return None
        return x["price"] * len(history) / sum(history)

    def _ratios(self, x: dict) -> list[float]:
        oldest = x["ts"] - self.max_age
        ratios = [r for m, (r, ts) in self._ratio.items() if m != x["market"] and ts >= oldest]
        own = self._own(x)
        if own is not None:
            ratios.append(own)
        return ratios

    def score_one(self, x: dict) -> float | None:
        """The median ratio of the panel with this tick in it; None while too few markets."""
        ratios = self._ratios(x)
        return median(ratios) if len(ratios) >= self.min_markets else None

    def learn_one(self, x: dict) -> None:
        own = self._own(x)
        if own is not None:
            self._ratio[x["market"]] = (own, x["ts"])
        self._remember(x)

    def _remember(self, x: dict) -> None:
        """Keep the tick's price among its market's last ``window`` (what ``_own`` divides by)."""
        history = self._history.get(x["market"])
        if history is None:
            history = self._history[x["market"]] = deque(maxlen=self.window)
        history.append(float(x["price"]))

    def explain(self, x: dict, score: float) -> str:
        return (f"the median market is {score - 1.0:+.0%} above its own average of the last "
                f"{self.window} reports ({len(self._ratios(x))} markets)")
