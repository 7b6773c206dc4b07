"""Run the production detector stack over one NAB series and give NAB its per-record scores.

Each record becomes a price tick of its own series (commodity ``nab``, market = the file) and
goes through ``DetectorStack.process`` with the stack's defaults, one record at a time, in
order: the verdict of a record exists before the next record is read, and nothing else about the
file (length, minimum, maximum, labels) is known to the stack. The record's NAB anomaly score
is the stack's ``anomaly`` score (detectors/anomaly.py), 0 while that detector warms up. A
record is a detection when that score reaches ``AnomalyScore.threshold``, the one threshold
the project ships.

Cross-market evidence does not exist for a lone series, so the stack can only quarantine on
strong temporal evidence (two detectors at twice their thresholds), exactly as it would for a
market with no neighbours.

>>> from datetime import datetime, timedelta
>>> t0 = datetime(2024, 1, 1)
>>> stamps = [t0 + timedelta(minutes=5 * i) for i in range(400)]
>>> values = [10.0 + (i % 7) for i in range(400)]
>>> values[350] = 80.0
>>> scores = anomaly_scores(stamps, values)
>>> [i for i, s in enumerate(scores) if s >= THRESHOLD]
[350]
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from collections.abc import Sequence

from detectors.anomaly import AnomalyScore
from detectors.stack import DetectorStack

THRESHOLD = AnomalyScore.threshold


def anomaly_scores(timestamps: Sequence[datetime], values: Sequence[float],
                   name: str = "series") -> list[float]:
    """One anomaly score in [0, 1] per record, computed strictly online."""
    stack = DetectorStack()
    scores = []
    for stamp, value in zip(timestamps, values):
        when = stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
        tick = {"commodity": "nab", "market": name, "province": "", "price": float(value),
                "ts": when.timestamp()}
        scores.append(stack.process(tick)["scores"].get("anomaly", 0.0))
    return scores


def score_file(job: tuple[str, Sequence[datetime], Sequence[float]]) -> tuple[str, list[float], float]:
    """``(key, timestamps, values)`` → ``(key, scores, seconds)``; a process-pool task."""
    key, timestamps, values = job
    started = time.perf_counter()
    scores = anomaly_scores(timestamps, values, name=key)
    return key, scores, time.perf_counter() - started
