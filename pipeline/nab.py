"""Score anomaly detections the way the Numenta Anomaly Benchmark (NAB) scores them.

Our own implementation of NAB's scoring (Lavin & Ahmad 2015; numenta/NAB ``nab/sweeper.py``,
``nab/runner.py``). Plain functions over plain data; the only I/O is in the ``load_*``
functions and ``write_results``.

Rules, for one file of ``n`` records and a fixed threshold (a record is a detection when its
anomaly score is ``>= threshold``):

1. Windows are ``(start, end)`` timestamps, converted to the inclusive record indices
   ``left..right`` of the first records carrying exactly those timestamps (NAB's labeller
   guarantees both are record timestamps; a few NAB files repeat timestamps). Windows must be
   in order and not overlap (NAB's labeller merges overlapping windows).
2. Probation: the first ``min(floor(0.15 n), 750)`` records are ignored entirely: a detection
   there is neither a hit nor a false positive, and is not counted.
3. A window is hit when any record inside it, after probation, is a detection. Only the
   earliest such detection counts and earns ``tpWeight * S(p) / S(-1)`` with
   ``p = -(right - i + 1) / width`` and ``width = right - left + 1``: exactly ``tpWeight`` at
   the window's first record, falling towards ``tpWeight * S(-1/width) / S(-1)`` at its last.
   Later detections in the same window add nothing and cost nothing.
4. A window with no detection costs ``-fnWeight``.
5. A detection outside every window costs ``fpWeight * S(q)`` (``S`` is negative there), with
   ``q = (i - right) / (width - 1)`` measured from the most recent window that ended before it
   (that window may lie in probation). With no earlier window it costs a full ``-fpWeight``;
   so does one after a one-record window, where NAB's ``width - 1`` would be zero.
6. ``S(p) = 2 / (1 + exp(5 p)) - 1``, clamped to ``-1`` for ``p > 3`` (as NAB does).
7. NAB's scorer removes no window: a window lying wholly inside probation can be neither hit
   nor missed (it adds nothing to the raw score), yet it still counts towards ``perfect``.
   (NAB's labeller already dropped windows starting in probation, so its labels have none.)
8. Corpus score per profile: raw scores, null scores (a detector that never fires) and perfect
   scores (``tpWeight`` times the number of windows) are each summed over the files, then
   ``100 * (raw - null) / (perfect - null)``: a never-firing detector scores 0 and one that fires
   on the first record of every window and nowhere else scores 100.

NAB also optimises each detector's threshold per profile on the scored data; we do not: the
threshold is given. The record counts ``tp, fp, fn, tn`` in ``FileScore`` are NAB's: records
after probation, inside (tp/fn) or outside (fp/tn) windows, detected or not.

>>> from datetime import timedelta
>>> t0 = datetime(2024, 1, 1)
>>> stamps = [t0 + timedelta(hours=i) for i in range(20)]
>>> windows = [(stamps[8], stamps[12])]
>>> standard = Profile(tp=1.0, fp=0.11, fn=1.0, tn=1.0)
>>> early = [i == 8 for i in range(20)]
>>> score_file(stamps, early, windows, standard).raw
1.0
>>> score_file(stamps, [False] * 20, windows, standard).raw
-1.0
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from collections.abc import Mapping, Sequence

PROBATION_PERCENT = 0.15
# NAB caps probation at probation_percent * 5000 records (750 at 15 %).
PROBATION_CAP_RECORDS = 5000

Window = tuple[datetime, datetime]


@dataclass(frozen=True)
class Profile:
    """One scoring profile's weights (NAB's cost matrix)."""

    tp: float
    fp: float
    fn: float
    tn: float


@dataclass(frozen=True)
class FileScore:
    """Raw NAB score of one file, NAB's record counts, and how many windows were hit or missed."""

    raw: float
    tp: int
    fp: int
    fn: int
    tn: int
    windows_hit: int
    windows_missed: int


def load_profiles(path: str | Path) -> dict[str, Profile]:
    """Read NAB's ``profiles.json`` (``{name: {"CostMatrix": {"tpWeight": ...}}}``)."""
    raw = json.loads(Path(path).read_text())
    return {
        name: Profile(
            tp=float(body["CostMatrix"]["tpWeight"]),
            fp=float(body["CostMatrix"]["fpWeight"]),
            fn=float(body["CostMatrix"]["fnWeight"]),
            tn=float(body["CostMatrix"]["tnWeight"]),
        )
        for name, body in raw.items()
    }


def load_windows(path: str | Path) -> dict[str, list[Window]]:
    """Read NAB's ``combined_windows.json``: file key ``category/name.csv`` → windows."""
    raw = json.loads(Path(path).read_text())
    return {
        name: [(datetime.fromisoformat(start), datetime.fromisoformat(end)) for start, end in spans]
        for name, spans in raw.items()
    }


def load_series(path: str | Path) -> tuple[list[datetime], list[float]]:
    """Read one NAB data file (``timestamp,value`` columns) into timestamps and values."""
    timestamps: list[datetime] = []
    values: list[float] = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            timestamps.append(datetime.fromisoformat(row["timestamp"]))
            values.append(float(row["value"]))
    return timestamps, values


def probation_length(n_records: int, probation_percent: float = PROBATION_PERCENT) -> int:
    """Number of leading records NAB ignores.

    >>> probation_length(20), probation_length(4032), probation_length(22695)
    (3, 604, 750)
    """
    # NAB compares the record index against a possibly fractional cap, hence the ceil.
    cap = math.ceil(probation_percent * PROBATION_CAP_RECORDS)
    return min(math.floor(probation_percent * n_records), cap)


def scaled_sigmoid(p: float) -> float:
    """NAB's ``S(p) = 2 / (1 + exp(5 p)) - 1``, and ``-1`` for ``p > 3``.

    >>> round(scaled_sigmoid(-1.0), 5), scaled_sigmoid(0.0), round(scaled_sigmoid(1.0), 5)
    (0.98661, 0.0, -0.98661)
    >>> scaled_sigmoid(3.5)
    -1.0
    """
    if p > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * p)) - 1.0


def window_spans(timestamps: Sequence[datetime], windows: Sequence[Window]) -> list[tuple[int, int]]:
    """Convert timestamp windows to inclusive record-index spans ``(left, right)``.

    Each limit must be the timestamp of a record; NAB data repeats some timestamps (clock
    changes), and like NAB we take the first record that carries it.
    """
    first: dict[datetime, int] = {}
    for i, ts in enumerate(timestamps):
        first.setdefault(ts, i)
    spans: list[tuple[int, int]] = []
    for start, end in windows:
        if start not in first or end not in first:
            raise ValueError(f"window {start} .. {end}: a limit is not a record's timestamp")
        left, right = first[start], first[end]
        if left > right:
            raise ValueError(f"window {start} .. {end} ends before it starts")
        if spans and left <= spans[-1][1]:
            raise ValueError(f"window {start} .. {end} overlaps or precedes the one before it")
        spans.append((left, right))
    return spans


def _false_positive_weight(previous: tuple[int, int] | None, i: int) -> float:
    """``S(q)`` for a detection at record ``i`` outside every window (a value in ``[-1, 0)``)."""
    if previous is None:
        return -1.0
    left, right = previous
    if right == left:
        return -1.0
    return scaled_sigmoid((i - right) / (right - left))  # right - left is width - 1


def score_file(
    timestamps: Sequence[datetime],
    detections: Sequence[bool],
    windows: Sequence[Window],
    profile: Profile,
    probation_percent: float = PROBATION_PERCENT,
) -> FileScore:
    """Raw NAB score of one file's detections (see the module's rules)."""
    n = len(timestamps)
    if len(detections) != n:
        raise ValueError(f"{len(detections)} detections for {n} timestamps")
    spans = window_spans(timestamps, windows)
    start = probation_length(n, probation_percent)

    first_hit: list[int | None] = [None] * len(spans)
    fp_cost = 0.0
    tp = fp = fn = tn = 0
    k = 0  # the first window not yet ended at record i
    for i in range(start, n):
        while k < len(spans) and spans[k][1] < i:
            k += 1
        fired = bool(detections[i])
        if k < len(spans) and spans[k][0] <= i:
            if fired:
                tp += 1
                if first_hit[k] is None:
                    first_hit[k] = i
            else:
                fn += 1
        elif fired:
            fp += 1
            fp_cost += profile.fp * _false_positive_weight(spans[k - 1] if k else None, i)
        else:
            tn += 1

    raw = fp_cost
    hit = missed = 0
    max_tp = scaled_sigmoid(-1.0)
    for (left, right), first in zip(spans, first_hit):
        if right < start:
            continue
        if first is None:
            raw -= profile.fn
            missed += 1
        else:
            raw += profile.tp * scaled_sigmoid(-(right - first + 1) / (right - left + 1)) / max_tp
            hit += 1
    return FileScore(raw=raw, tp=tp, fp=fp, fn=fn, tn=tn, windows_hit=hit, windows_missed=missed)


def null_and_perfect(
    timestamps: Sequence[datetime],
    windows: Sequence[Window],
    profile: Profile,
    probation_percent: float = PROBATION_PERCENT,
) -> tuple[float, float]:
    """Raw scores of a never-firing detector and of NAB's perfect detector on one file."""
    null = score_file(timestamps, [False] * len(timestamps), windows, profile, probation_percent).raw
    return null, len(windows) * profile.tp


def score_corpus(
    per_file: Mapping[str, tuple[Sequence[datetime], Sequence[float]]],
    windows: Mapping[str, Sequence[Window]],
    profiles: Mapping[str, Profile],
    threshold: float,
    probation_percent: float = PROBATION_PERCENT,
) -> dict[str, float]:
    """Normalised NAB score (0 = never fires, 100 = perfect) per profile over the given files.

    ``per_file`` maps a file key (as in ``windows``) to its timestamps and anomaly scores.
    """
    missing = sorted(set(per_file) - set(windows))
    if missing:
        raise KeyError(f"no windows for {missing}")
    results: dict[str, float] = {}
    for name, profile in profiles.items():
        raw = null = perfect = 0.0
        for key, (timestamps, scores) in per_file.items():
            detections = [s >= threshold for s in scores]
            raw += score_file(timestamps, detections, windows[key], profile, probation_percent).raw
            file_null, file_perfect = null_and_perfect(
                timestamps, windows[key], profile, probation_percent
            )
            null += file_null
            perfect += file_perfect
        if perfect == null:
            raise ValueError("the files hold no window, so the score cannot be normalised")
        results[name] = 100.0 * (raw - null) / (perfect - null)
    return results


def write_results(
    dirpath: str | Path,
    name: str,
    timestamps: Sequence[datetime],
    values: Sequence[float],
    scores: Sequence[float],
    windows: Sequence[Window] | None = None,
) -> Path:
    """Write one file's anomaly scores in NAB's results layout and return the path written.

    ``dirpath`` is the detector's results folder (NAB's ``results/<detector>``) and ``name`` the
    data file's key (``realTraffic/speed_7578.csv``); the file goes to
    ``<dirpath>/realTraffic/<detector>_speed_7578.csv`` where ``<detector>`` is ``dirpath``'s
    last part, so NAB's own tools can read it. Columns ``timestamp,value,anomaly_score``, plus
    ``label`` (1 inside a window) when ``windows`` are given.
    """
    if not len(timestamps) == len(values) == len(scores):
        raise ValueError("timestamps, values and scores must have the same length")
    root = Path(dirpath)
    category, _, filename = name.rpartition("/")
    out = root / category / f"{root.name}_{filename}"
    out.parent.mkdir(parents=True, exist_ok=True)
    labels: list[int] | None = None
    if windows is not None:
        labels = [0] * len(timestamps)
        for left, right in window_spans(timestamps, windows):
            labels[left : right + 1] = [1] * (right - left + 1)
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        header = ["timestamp", "value", "anomaly_score"]
        writer.writerow(header if labels is None else header + ["label"])
        for i, (ts, value, score) in enumerate(zip(timestamps, values, scores)):
            row = [ts.isoformat(sep=" "), value, score]
            writer.writerow(row if labels is None else row + [labels[i]])
    return out
