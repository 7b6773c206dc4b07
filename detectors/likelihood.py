"""Anomaly likelihood: how unusual is the recent level of a raw anomaly score for this series.

The layer Numenta put over HTM's raw scores (Ahmad, Lavin, Purdy & Agha 2017, "Unsupervised
real-time anomaly detection for streaming data"): a raw score that is often high on a noisy
series means little, the same score on a calm series means a lot. The short-term mean of the raw
score (last ``short`` values) is compared with the long-term distribution of that mean, taken as
normal; the likelihood is one minus its tail probability. Unlike HTM, which re-estimates the
distribution over its last 8640 values every 100 records, the long-term moments here are
exponentially weighted (``alpha``): the state stays a few numbers whatever the history, which
matters for a checkpoint written per series and batch.

The output is HTM's log scale, ``log(1 - likelihood) / log(1e-10)`` in [0, 1]: 0.5 means a tail
probability of 1e-5. As HTM does, only the first of several consecutive "red" values (tail at or
below ``red``) keeps its score; the ones after it are reported at the ``yellow`` level, so a long
anomaly is reported once.

Unlike HTM, the tail probability is multiplied by ``n / multiplicity`` once ``n`` values are
more than ``multiplicity``: a series tested on every value meets a 1e-5 tail about once per
100,000 values by chance, so the longer it runs, the more such alarms it collects; the bar rises
with its length instead (a running multiple-comparison correction, known at every value). It
was chosen on the odd-numbered NAB files (docs/detection.md, row 25).

>>> lik = AnomalyLikelihood(learning=50)
>>> import random
>>> rng = random.Random(1)
>>> for _ in range(300):
...     lik.learn_one(rng.uniform(0.0, 0.1))
>>> lik.score_one(0.05) < 0.1
True
>>> scores = []
>>> for _ in range(10):
...     scores.append(lik.score_one(1.0))
...     lik.learn_one(1.0)
>>> max(scores) >= 0.5
True
"""
from __future__ import annotations

import math
from collections import deque

from detectors.memo import Transient

# HTM's log scale: log(1 - likelihood) / log(1e-10), so a tail probability of 1e-10 scores 1.
LOG_FLOOR = math.log(1e-10)


class AnomalyLikelihood(Transient):
    def __init__(
        self,
        learning: int = 288,
        short: int = 10,
        alpha: float = 0.001,
        min_mean: float = 0.03,
        min_var: float = 0.0003,
        red: float = 1e-5,
        yellow: float = 1e-3,
        multiplicity: int = 5000,
    ):
        # Defaults are HTM's (learning period 288, averaging window 10, mean >= 0.03 and
        # variance >= 0.0003, red 0.99999, yellow 0.999); alpha 0.001 weighs about the last
        # thousand values, between HTM's re-estimation period and its history window.
        self.learning = learning
        self.alpha = alpha
        self.min_mean = min_mean
        self.min_var = min_var
        self.red = red
        self.yellow = yellow
        self.multiplicity = multiplicity
        self._recent: deque[float] = deque(maxlen=short)
        self._n = 0
        self._mean = 0.0
        self._var = 0.0
        self._last_tail = 1.0

    def _short_mean(self, raw: float) -> float:
        recent = self._recent
        if len(recent) == recent.maxlen:
            return (sum(recent) - recent[0] + raw) / len(recent)
        return (sum(recent) + raw) / (len(recent) + 1)

    # The tail of a tick's raw score is asked for by its score and again by its learning, before
    # anything changed (detectors/memo.py): (raw, values learned, tail).
    TRANSIENT = ("_memo",)
    _memo: tuple[float, int, float] | None = None
    # Checkpoints written before the correction existed get it too.
    multiplicity: int = 5000

    def _tail(self, raw: float) -> float:
        memo = self._memo
        if memo is not None and memo[0] == raw and memo[1] == self._n:
            return memo[2]
        mean = max(self._mean, self.min_mean)
        std = math.sqrt(max(self._var, self.min_var))
        # HTM folds values below the mean onto the upper side: unusually quiet is unusual too.
        z = abs(self._short_mean(raw) - mean) / std
        tail = 0.5 * math.erfc(z / math.sqrt(2.0))
        self._memo = (raw, self._n, tail)
        return tail

    def score_one(self, raw: float) -> float | None:
        """Log-scale likelihood in [0, 1] of a raw score; None while still learning."""
        if self._n < self.learning:
            return None
        tail = self._tail(raw)
        if tail <= self.red and self._last_tail <= self.red:
            tail = self.yellow
        if self._n > self.multiplicity:
            tail = min(1.0, tail * self._n / self.multiplicity)
        return min(math.log(tail + 1e-10) / LOG_FLOOR, 1.0)

    def learn_one(self, raw: float) -> None:
        if self._n >= self.learning:
            self._last_tail = self._tail(raw)
        short_mean = self._short_mean(raw)
        self._recent.append(raw)
        self._n += 1
        if self._n == 1:
            self._mean = short_mean
            return
        # Running moments: exact means for the first values, then exponentially weighted.
        weight = max(self.alpha, 1.0 / self._n)
        delta = short_mean - self._mean
        self._mean += weight * delta
        self._var = (1.0 - weight) * (self._var + weight * delta * delta)
