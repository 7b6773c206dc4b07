"""General anomaly score in [0, 1] for one series of any kind of value (prices, NAB metrics).

Two cheap views of the same series; the larger score wins:

* a record break: the value leaves the range of the recent accepted values, the last
  ``window`` of them or the last half of the history when that is longer (the longer a series
  has run, the rarer a break must be to mean something). Scored ``0.5 + 0.5 * min(excess /
  range, 1)``, so any break reaches the threshold 0.5. Most labelled anomalies in the Numenta
  Anomaly Benchmark are the first value for a long time to go that high or that low.
* an anomaly likelihood (detectors/likelihood.py, after HTM) over a Gaussian surprise of the
  value against its time of day's exponentially weighted mean and variance (``buckets`` per
  day): it fires when the recent surprise is far above the series' own usual surprise (a tail
  probability of at most 1e-5 scores 0.5). It catches what a range cannot: a daily pattern
  that breaks (the usual evening rush missing) and bursts of unusual values inside the range.
  A daily price series, reported at one hour, has one bucket: the series' own mean.

After a tick that reached the threshold, the next ``rest`` ticks (or 2% of the history, when
more) score 0: one event is reported once, not on every tick of it. Only a break of the range on
the other side is still reported (and starts a rest of its own): a drop after a spike is not the
spike going on. After a likelihood alarm, which broke no side, any break is. Values may be zero or
negative; nothing here takes a logarithm. A quarantined tick (``observe``) counts as seen but
does not enter the range or the means, so an entry error cannot mask the next real break.

The defaults are the project's one shipped configuration, chosen on the odd-numbered files of
the 39 public NAB series and checked on the even-numbered ones (docs/detection.md records
every attempt and its score).

>>> det = AnomalyScore(window=50, warmup=20, learning=30)
>>> for i in range(60):
...     det.learn_one({"price": 100.0 + (i % 5), "ts": 60.0 * i})
>>> det.score_one({"price": 102.0, "ts": 3600.0}) < det.threshold
True
>>> spike = {"price": 180.0, "ts": 3660.0}
>>> score = det.score_one(spike)
>>> score >= det.threshold
True
>>> det.explain(spike, score)
'180 is above the range 100 .. 104 of the last 50 values (score 1.00)'
>>> det.learn_one(spike)
>>> det.score_one({"price": 250.0, "ts": 3720.0})  # resting after the detection
0.0
>>> det.score_one({"price": 20.0, "ts": 3720.0}) >= det.threshold  # but not from the other side
True
"""
from __future__ import annotations

import math
from collections import deque

from detectors.likelihood import AnomalyLikelihood

DAY = 86400.0


class SlidingExtreme:
    """Maximum of the last ``window`` values pushed, O(1) amortised (a monotonic queue).

    ``sign=-1`` keeps the minimum instead. The window may grow between queries, never shrink.
    """

    def __init__(self, sign: float = 1.0):
        self.sign = sign
        self._queue: deque[tuple[int, float]] = deque()
        self._i = 0

    def push(self, value: float) -> None:
        value *= self.sign
        queue = self._queue
        while queue and queue[-1][1] <= value:
            queue.pop()
        queue.append((self._i, value))
        self._i += 1

    def value(self, window: int) -> float:
        queue = self._queue
        while queue[0][0] < self._i - window:
            queue.popleft()
        return self.sign * queue[0][1]


class DailyProfile:
    """Exponentially weighted mean and variance of a value per time-of-day bucket."""

    def __init__(self, buckets: int = 24, alpha: float = 0.05, warmup: int = 3):
        self.buckets = buckets
        self.alpha = alpha
        self.warmup = warmup
        self._mean = [0.0] * buckets
        self._var = [0.0] * buckets
        self._n = [0] * buckets

    def _bucket(self, ts: float) -> int:
        return int((ts % DAY) * self.buckets / DAY)

    def surprise(self, value: float, ts: float) -> float:
        """Gaussian surprise in [0, 1): 0 at the bucket's mean, about 0.6 two stds out."""
        k = self._bucket(ts)
        if self._n[k] < self.warmup:
            return 0.0
        mean = self._mean[k]
        std = max(math.sqrt(self._var[k]), 1e-9 + 1e-3 * abs(mean))
        z = (value - mean) / std
        return 1.0 - math.exp(-z * z / 8.0)

    def learn(self, value: float, ts: float) -> None:
        k = self._bucket(ts)
        self._n[k] += 1
        if self._n[k] == 1:
            self._mean[k] = value
            return
        delta = value - self._mean[k]
        self._mean[k] += self.alpha * delta
        self._var[k] = (1.0 - self.alpha) * (self._var[k] + self.alpha * delta * delta)


class AnomalyScore:
    name = "anomaly"
    threshold = 0.5
    # The side of the range the detection that started the rest broke: 1 above, -1 below, 0
    # neither (a likelihood alarm). A class default, for checkpoints written before it existed.
    _side = 0.0

    def __init__(
        self,
        window: int = 1500,
        window_share: float = 0.5,
        warmup: int = 200,
        rest: int = 100,
        rest_share: float = 0.02,
        buckets: int = 24,
        alpha: float = 0.05,
        learning: int = 288,
        held: int = 32,
        repeat_tolerance: float = 0.02,
    ):
        if warmup < 2 or window < warmup:
            raise ValueError("need 2 <= warmup <= window")
        self.window = window
        self.window_share = window_share
        self.warmup = warmup
        self.rest = rest
        self.rest_share = rest_share
        self._high = SlidingExtreme(1.0)
        self._low = SlidingExtreme(-1.0)
        # Recent quarantined values: a value quarantined twice is part of the series.
        self._held: deque[float] = deque(maxlen=held)
        self.repeat_tolerance = repeat_tolerance
        self._profile = DailyProfile(buckets, alpha)
        self._likelihood = AnomalyLikelihood(learning=learning)
        self._n = 0  # ticks seen
        self._learned = 0  # ticks learned (in the range and the profile)
        self._resting = 0
        self._scored: tuple[float, float, int, float] | None = None

    # -- the two views -------------------------------------------------------------------------

    def _range(self) -> tuple[float, float, int]:
        window = max(self.window, int(self.window_share * self._learned))
        return self._low.value(window), self._high.value(window), min(window, self._learned)

    def _record(self, value: float) -> float:
        if self._learned < self.warmup:
            return 0.0
        low, high, _ = self._range()
        if value > high:
            excess = value - high
        elif value < low:
            excess = low - value
        else:
            return 0.0
        span = high - low
        return 0.5 + 0.5 * (min(excess / span, 1.0) if span > 0 else 1.0)

    def _break_side(self, value: float) -> float:
        low, high, _ = self._range()
        return 1.0 if value > high else -1.0 if value < low else 0.0

    def _other_side(self, value: float) -> float:
        """While resting: the record-break score of a break on the side the rest did not start
        on (the rest after a spike must not hide the drop after it), else 0."""
        score = self._record(value)
        if score < self.threshold or self._break_side(value) == self._side:
            return 0.0
        return score

    def _raw_score(self, x: dict) -> float:
        surprise = self._profile.surprise(x["price"], x["ts"])
        likelihood = self._likelihood.score_one(surprise) or 0.0
        return max(self._record(x["price"]), likelihood)

    # -- detector protocol -------------------------------------------------------------------

    def score_one(self, x: dict) -> float | None:
        if self._n < self.warmup:
            return None
        if self._resting:
            return self._other_side(x["price"])
        score = self._raw_score(x)
        self._scored = (x["price"], x["ts"], self._n, score)  # learn_one of this tick reuses it
        return score

    def learn_one(self, x: dict) -> None:
        self._see(x)
        self._widen(x["price"])
        self._profile.learn(x["price"], x["ts"])
        self._learned += 1

    def observe(self, x: dict) -> None:
        """Count a tick as seen without letting it into the range or the profile (quarantined).

        A quarantined entry error must not widen the range and hide the next real break; but
        it was reported (and scored), so it starts a rest period like any detection and takes
        its place in the surprise history. But a value beyond the range that one of the last
        ``held`` quarantined ticks already took (within ``repeat_tolerance`` of the range) is
        no entry error: it is a value the series takes (a metric that drops to its floor now
        and then, a market's recurring low price), so it joins the range and is not reported
        again after every rest.
        """
        value = x["price"]
        if self._held and self._learned:
            low, high, _ = self._range()
            tolerance = self.repeat_tolerance * (high - low)
            if (value > high or value < low) and any(abs(value - v) <= tolerance for v in self._held):
                self._widen(value)
        self._held.append(value)
        self._see(x)

    def _widen(self, value: float) -> None:
        self._high.push(value)
        self._low.push(value)

    def _see(self, x: dict) -> None:
        if self._resting:
            self._resting -= 1
            if self._other_side(x["price"]) >= self.threshold:
                self._rest_from(x["price"])
        elif self._n >= self.warmup:
            scored = self._scored
            fresh = scored is not None and scored[:3] == (x["price"], x["ts"], self._n)
            if (scored[3] if scored is not None and fresh else self._raw_score(x)) >= self.threshold:
                self._rest_from(x["price"])
        self._likelihood.learn_one(self._profile.surprise(x["price"], x["ts"]))
        self._n += 1

    def _rest_from(self, value: float) -> None:
        """Start a rest after a detection, remembering which side of the range it broke."""
        self._resting = max(self.rest, int(self.rest_share * self._n))
        self._side = self._break_side(value) if self._learned >= self.warmup else 0.0

    def explain(self, x: dict, score: float) -> str:
        value = x["price"]
        if self._record(value) >= self.threshold:
            low, high, count = self._range()
            side = "above" if value > high else "below"
            return (
                f"{value:g} is {side} the range {low:g} .. {high:g} of the last {count} values "
                f"(score {score:.2f})"
            )
        return f"{value:g}: recent values unusually far from their usual level (score {score:.2f})"
