"""The rest after a detection hides the rest of that event, not a break on the other side of the
range (detectors/anomaly.py ``_other_side``; docs/detection.md, NAB attempts row 27)."""
from __future__ import annotations

from datetime import datetime, timedelta

from detectors.anomaly import AnomalyScore
from detectors.state import decode_state, encode_state
from pipeline.nab_run import THRESHOLD, anomaly_scores


def _warm() -> AnomalyScore:
    det = AnomalyScore(window=50, warmup=20, learning=30, rest=20)
    for i in range(60):
        det.learn_one({"price": 100.0 + (i % 5), "ts": 60.0 * i})
    return det


def _tick(det: AnomalyScore, price: float, i: int) -> float | None:
    x = {"price": price, "ts": 60.0 * i}
    score = det.score_one(x)
    det.learn_one(x)
    return score


def test_a_drop_below_the_range_is_reported_while_resting_after_a_spike_above_it():
    det = _warm()
    assert _tick(det, 180.0, 60) >= THRESHOLD  # the spike: a rest of 20 ticks starts
    assert _tick(det, 102.0, 61) == 0.0
    assert _tick(det, 250.0, 62) == 0.0  # the same event going higher: still resting
    drop = {"price": 20.0, "ts": 60.0 * 63}
    assert det.score_one(drop) >= THRESHOLD  # the other side: 0.0 before this change
    assert det.explain(drop, det.score_one(drop)).startswith("20 is below the range 100 .. 250")
    det.learn_one(drop)
    # The drop starts a rest of its own: a deeper drop is the same event, a new high is not.
    assert _tick(det, 10.0, 64) == 0.0
    assert _tick(det, 300.0, 65) >= THRESHOLD


def test_after_a_likelihood_alarm_any_break_is_reported():
    det = _warm()
    det._resting, det._side = 20, 0.0  # a rest started by an alarm that broke no range
    assert det.score_one({"price": 101.0, "ts": 3600.0}) == 0.0
    assert det.score_one({"price": 180.0, "ts": 3600.0}) >= THRESHOLD
    assert det.score_one({"price": 20.0, "ts": 3600.0}) >= THRESHOLD


def test_the_side_survives_a_checkpoint_and_old_checkpoints_read_as_no_side():
    det = _warm()
    _tick(det, 180.0, 60)
    restored = decode_state(encode_state(det))
    assert restored._side == 1.0 and restored._resting == det._resting
    assert restored.score_one({"price": 250.0, "ts": 3660.0}) == 0.0
    assert restored.score_one({"price": 20.0, "ts": 3660.0}) >= THRESHOLD
    old = AnomalyScore.__new__(AnomalyScore)
    old.__dict__.update({k: v for k, v in det.__dict__.items() if k != "_side"})
    assert old._side == 0.0  # written before the side existed: any break is reported
    assert old.score_one({"price": 250.0, "ts": 3660.0}) >= THRESHOLD


def test_through_the_stack_the_drop_after_a_spike_is_a_detection():
    t0 = datetime(2024, 1, 1)
    stamps = [t0 + timedelta(minutes=5 * i) for i in range(400)]
    values = [10.0 + (i % 7) for i in range(400)]
    values[350], values[370] = 80.0, -40.0
    scores = anomaly_scores(stamps, values)
    assert [i for i, s in enumerate(scores) if s >= THRESHOLD] == [350, 370]
