"""NAB scoring: hand-worked cases, normalisation, and one real NAB file end to end.

Hand-worked cases use a 20-record hourly file, so probation is floor(0.15 * 20) = 3 records
(indices 0..2), and the standard profile (tp 1, fp 0.11, fn 1). S(p) = 2/(1+exp(5p)) - 1 equals
tanh(-5p/2), which is how the expected values below were worked out:
S(-1) = tanh(2.5) = 0.98661430, so a hit earns tanh(5|p|/2) / tanh(2.5).
"""
from __future__ import annotations

import csv
import math
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.nab import (
    Profile,
    load_profiles,
    load_series,
    load_windows,
    null_and_perfect,
    probation_length,
    scaled_sigmoid,
    score_corpus,
    score_file,
    window_spans,
    write_results,
)

FIXTURES = Path(__file__).parent / "fixtures" / "nab"
SPEED = "realTraffic/speed_7578.csv"

STANDARD = Profile(tp=1.0, fp=0.11, fn=1.0, tn=1.0)
LOW_FP = Profile(tp=1.0, fp=0.22, fn=1.0, tn=1.0)
LOW_FN = Profile(tp=1.0, fp=0.11, fn=2.0, tn=1.0)
PROFILES = {"standard": STANDARD, "reward_low_FP_rate": LOW_FP, "reward_low_FN_rate": LOW_FN}

T0 = datetime(2024, 3, 1)
STAMPS = [T0 + timedelta(hours=i) for i in range(20)]


def window(left: int, right: int) -> tuple[datetime, datetime]:
    return (STAMPS[left], STAMPS[right])


def fire_at(*indices: int) -> list[bool]:
    return [i in indices for i in range(len(STAMPS))]


def raw(detections: list[bool], windows: list, profile: Profile = STANDARD) -> float:
    return score_file(STAMPS, detections, windows, profile).raw


# --- the sigmoid and probation -------------------------------------------------------------


def test_scaled_sigmoid_matches_formula_and_clamps_only_past_three():
    assert scaled_sigmoid(-1.0) == pytest.approx(math.tanh(2.5))
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828364)
    assert scaled_sigmoid(0.0) == 0.0
    # p = 3 is still on the curve (tanh(-7.5) = -0.99999939); only p > 3 is clamped to -1.
    assert scaled_sigmoid(3.0) == pytest.approx(-0.99999939, abs=1e-8)
    assert scaled_sigmoid(3.0) != -1.0
    assert scaled_sigmoid(3.0001) == -1.0
    assert scaled_sigmoid(100.0) == -1.0


def test_probation_is_15_percent_capped_at_750_records():
    assert probation_length(20) == 3
    assert probation_length(1127) == 169  # floor(169.05)
    assert probation_length(4999) == 749
    assert probation_length(5000) == 750
    assert probation_length(22695) == 750
    assert probation_length(100, probation_percent=0.1) == 10


# --- one file, one window [8, 12] (width 5) --------------------------------------------------


def test_detection_at_window_start_earns_full_tp_weight():
    # p = -(12 - 8 + 1) / 5 = -1, so S(-1)/S(-1) = 1.
    assert raw(fire_at(8), [window(8, 12)]) == pytest.approx(1.0)


def test_detection_at_window_end_earns_less():
    # p = -(12 - 12 + 1) / 5 = -0.2: tanh(0.5) / tanh(2.5) = 0.46211716 / 0.98661430 = 0.46838684.
    assert raw(fire_at(12), [window(8, 12)]) == pytest.approx(0.46838684)


def test_missed_window_costs_fn_weight():
    assert raw(fire_at(), [window(8, 12)]) == -1.0
    assert raw(fire_at(), [window(8, 12)], LOW_FN) == -2.0


def test_only_first_detection_in_a_window_counts():
    # First detection at 9: p = -(12 - 9 + 1) / 5 = -0.8: tanh(2) / tanh(2.5) = 0.97710684.
    # The later one at 11 adds nothing and costs nothing.
    result = score_file(STAMPS, fire_at(9, 11), [window(8, 12)], STANDARD)
    assert result.raw == pytest.approx(0.97710684)
    assert result.raw == pytest.approx(raw(fire_at(9), [window(8, 12)]))
    assert (result.tp, result.fp, result.windows_hit, result.windows_missed) == (2, 0, 1, 0)


def test_false_positive_after_window_is_weighted_by_distance_past_it():
    # Hit at 8: +1. FP at 14: q = (14 - 12) / (5 - 1) = 0.5, S(0.5) = tanh(-1.25) = -0.84828364,
    # times fp 0.11 = -0.09331120. Total 0.90668880.
    assert raw(fire_at(8, 14), [window(8, 12)]) == pytest.approx(0.90668880)
    # The low-FP profile doubles that cost: 1 - 0.18662240.
    assert raw(fire_at(8, 14), [window(8, 12)], LOW_FP) == pytest.approx(0.81337760)


def test_false_positive_far_past_window_costs_full_fp_weight():
    # Window [5, 7], width 3, hit at 5: +1.
    # FP at 9: q = 2 / 2 = 1, S(1) = tanh(-2.5) = -0.98661430, times 0.11 = -0.10852757.
    # FP at 14: q = 7 / 2 = 3.5 > 3, S = -1, times 0.11 = -0.11.
    # Total: 1 - 0.10852757 - 0.11 = 0.78147243.
    assert raw(fire_at(5, 9, 14), [window(5, 7)]) == pytest.approx(0.78147243)


def test_false_positive_before_any_window_costs_full_fp_weight():
    # FP at 5 with no earlier window: -0.11; the window [8, 12] is hit at 8: +1.
    assert raw(fire_at(5, 8), [window(8, 12)]) == pytest.approx(0.89)
    # Same FP, window missed: -0.11 - 1.
    assert raw(fire_at(5), [window(8, 12)]) == pytest.approx(-1.11)


def test_false_positive_between_windows_is_measured_from_the_previous_one():
    # Windows [4, 6] and [12, 14], both hit at their start: +2.
    # FP at 9: q = (9 - 6) / (3 - 1) = 1.5, S = tanh(-3.75) = -0.99889444, times 0.11 = -0.10987839.
    assert raw(fire_at(4, 9, 12), [window(4, 6), window(12, 14)]) == pytest.approx(1.89012161)


def test_detection_in_probation_is_ignored():
    # Records 0..2 are probation: the detection at 1 is neither an FP nor counted; the window is missed.
    result = score_file(STAMPS, fire_at(1), [window(8, 12)], STANDARD)
    assert result.raw == -1.0
    assert (result.tp, result.fp) == (0, 0)


def test_window_starting_in_probation_keeps_its_full_width():
    # Window [1, 6], width 6. The detection at 2 is in probation and ignored; the one at 4 counts,
    # still measured against the whole window: p = -(6 - 4 + 1) / 6 = -0.5,
    # tanh(1.25) / tanh(2.5) = 0.84828364 / 0.98661430 = 0.85979257.
    assert raw(fire_at(2, 4), [window(1, 6)]) == pytest.approx(0.85979257)
    # A hit only inside probation does not count: the window is missed.
    assert raw(fire_at(2), [window(1, 6)]) == -1.0


def test_window_wholly_in_probation_is_neither_hit_nor_missed_but_counts_towards_perfect():
    assert raw(fire_at(), [window(0, 2)]) == 0.0
    assert raw(fire_at(1), [window(0, 2)]) == 0.0
    assert null_and_perfect(STAMPS, [window(0, 2)], STANDARD) == (0.0, 1.0)
    # An FP after it is still measured from it: q = (5 - 2) / (3 - 1) = 1.5, -0.10987839.
    assert raw(fire_at(5), [window(0, 2)]) == pytest.approx(-0.10987839)


def test_record_counts_follow_nab():
    # After probation: 17 records (3..19); 5 inside the window, 12 outside.
    # Detections: 1 (probation, ignored), 5 (FP), 9 and 11 (inside).
    result = score_file(STAMPS, fire_at(1, 5, 9, 11), [window(8, 12)], STANDARD)
    assert (result.tp, result.fn, result.fp, result.tn) == (2, 3, 1, 11)
    assert (result.windows_hit, result.windows_missed) == (1, 0)


def test_window_limits_are_the_first_records_carrying_them():
    assert window_spans(STAMPS, [window(8, 12), window(14, 15)]) == [(8, 12), (14, 15)]
    # NAB files repeat timestamps at clock changes: records 5 and 6 share one here.
    repeated = STAMPS[:6] + STAMPS[5:19]
    assert window_spans(repeated, [(STAMPS[5], STAMPS[8])]) == [(5, 9)]


def test_false_positive_after_one_record_window_costs_full_fp_weight():
    # Window [9, 9] hit: +1. NAB would divide by width - 1 = 0 for the FP at 12; we charge -0.11.
    assert raw(fire_at(9, 12), [window(9, 9)]) == pytest.approx(0.89)


@pytest.mark.parametrize(
    "windows",
    [
        [(STAMPS[8] + timedelta(minutes=10), STAMPS[12])],  # start is not a record's timestamp
        [(STAMPS[8], STAMPS[12] + timedelta(minutes=10))],  # end is not a record's timestamp
        [window(12, 8)],  # ends before it starts
        [window(8, 12), window(12, 14)],  # overlaps
        [window(12, 14), window(4, 6)],  # out of order
    ],
)
def test_bad_windows_are_rejected(windows):
    with pytest.raises(ValueError):
        score_file(STAMPS, fire_at(), windows, STANDARD)


def test_detections_must_match_timestamps():
    with pytest.raises(ValueError):
        score_file(STAMPS, [False] * 19, [window(8, 12)], STANDARD)


# --- normalisation ---------------------------------------------------------------------------


def scores_at(*indices: int) -> list[float]:
    return [0.9 if i in indices else 0.2 for i in range(len(STAMPS))]


def test_perfect_detector_scores_100_and_null_detector_0():
    windows = {"a.csv": [window(4, 6), window(12, 14)], "b.csv": [window(8, 12)]}
    perfect = {"a.csv": (STAMPS, scores_at(4, 12)), "b.csv": (STAMPS, scores_at(8))}
    null = {"a.csv": (STAMPS, scores_at()), "b.csv": (STAMPS, scores_at())}
    for value in score_corpus(perfect, windows, PROFILES, threshold=0.5).values():
        assert value == pytest.approx(100.0)
    for value in score_corpus(null, windows, PROFILES, threshold=0.5).values():
        assert value == pytest.approx(0.0)


def test_normalised_score_of_a_late_detection():
    # Detection at the window's end: raw 0.46838684 (see above); the score equal to the threshold
    # counts as a detection.
    # standard and low-FP: null -1, perfect 1: 100 * 1.46838684 / 2 = 73.419342.
    # low-FN: null -2, perfect 1: 100 * 2.46838684 / 3 = 82.279561.
    result = score_corpus({"a.csv": (STAMPS, scores_at(12))}, {"a.csv": [window(8, 12)]}, PROFILES, 0.9)
    assert result == pytest.approx(
        {"standard": 73.419342, "reward_low_FP_rate": 73.419342, "reward_low_FN_rate": 82.279561}
    )
    below = score_corpus({"a.csv": (STAMPS, scores_at(12))}, {"a.csv": [window(8, 12)]}, PROFILES, 0.91)
    assert below["standard"] == pytest.approx(0.0)


def test_corpus_sums_raw_scores_before_normalising():
    # a: one window hit at its start (+1); b: two windows missed (-2).
    # raw -1, null -3, perfect 3: 100 * 2 / 6 = 33.33 (the mean of per-file scores would be 50).
    windows = {"a.csv": [window(8, 12)], "b.csv": [window(4, 6), window(12, 14)]}
    per_file = {"a.csv": (STAMPS, scores_at(8)), "b.csv": (STAMPS, scores_at())}
    result = score_corpus(per_file, windows, {"standard": STANDARD}, threshold=0.5)
    assert result["standard"] == pytest.approx(100 / 3)


def test_corpus_needs_windows_for_every_file_and_at_least_one_window():
    with pytest.raises(KeyError):
        score_corpus({"a.csv": (STAMPS, scores_at())}, {}, PROFILES, 0.5)
    with pytest.raises(ValueError):
        score_corpus({"a.csv": (STAMPS, scores_at())}, {"a.csv": []}, PROFILES, 0.5)


@given(
    fired=st.lists(st.booleans(), min_size=20, max_size=20),
    layout=st.sampled_from([[(4, 6), (12, 14)], [(8, 12)], [(0, 2), (9, 10)], [(5, 7), (9, 19)]]),
)
def test_raw_score_is_bounded_by_null_and_perfect(fired, layout):
    windows = [window(a, b) for a, b in layout]
    result = score_file(STAMPS, fired, windows, STANDARD)
    null, perfect = null_and_perfect(STAMPS, windows, STANDARD)
    assert result.raw <= perfect + 1e-12
    assert result.raw >= null - STANDARD.fp * result.fp - 1e-12


# --- a real NAB file -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speed():
    timestamps, values = load_series(FIXTURES / "data" / SPEED)
    windows = load_windows(FIXTURES / "combined_windows.json")
    return timestamps, values, windows


def test_loaders_read_nab_files(speed):
    timestamps, values, windows = speed
    assert len(timestamps) == len(values) == 1127
    assert (timestamps[0], values[0]) == (datetime(2015, 9, 8, 11, 39), 73.0)
    assert window_spans(timestamps, windows[SPEED]) == [(303, 331), (740, 768), (909, 937), (945, 973)]
    profiles = load_profiles(FIXTURES / "profiles.json")
    assert profiles == PROFILES


def test_detector_firing_at_each_window_start_scores_100_on_real_file(speed):
    timestamps, _, windows = speed
    starts = {left for left, _ in window_spans(timestamps, windows[SPEED])}
    # Also firing inside probation (record 10) must not matter.
    scores = [1.0 if i in starts or i == 10 else 0.0 for i in range(len(timestamps))]
    result = score_corpus({SPEED: (timestamps, scores)}, windows, PROFILES, threshold=0.5)
    assert result == pytest.approx({name: 100.0 for name in PROFILES})


def test_firing_just_after_each_window_scores_below_null_on_real_file(speed):
    timestamps, _, windows = speed
    after = {right + 1 for _, right in window_spans(timestamps, windows[SPEED])}
    scores = [1.0 if i in after else 0.0 for i in range(len(timestamps))]
    result = score_file(timestamps, [s >= 0.5 for s in scores], windows[SPEED], STANDARD)
    assert (result.windows_hit, result.windows_missed, result.fp) == (0, 4, 4)
    assert score_corpus({SPEED: (timestamps, scores)}, windows, PROFILES, 0.5)["standard"] < 0.0


def test_write_results_uses_nab_layout_and_round_trips(speed, tmp_path):
    timestamps, values, windows = speed
    starts = {left for left, _ in window_spans(timestamps, windows[SPEED])}
    scores = [1.0 if i in starts else 0.0 for i in range(len(timestamps))]
    path = write_results(tmp_path / "pasarwatch", SPEED, timestamps, values, scores, windows[SPEED])
    assert path == tmp_path / "pasarwatch" / "realTraffic" / "pasarwatch_speed_7578.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "label"]
    assert rows[0]["timestamp"] == "2015-09-08 11:39:00"
    assert sum(int(r["label"]) for r in rows) == 4 * 29
    read_back = [float(r["anomaly_score"]) for r in rows]
    assert load_series(path) == (timestamps, values)
    result = score_corpus({SPEED: (timestamps, read_back)}, windows, PROFILES, threshold=0.5)
    assert result["standard"] == pytest.approx(100.0)

    bare = write_results(tmp_path / "other", "top.csv", timestamps[:2], values[:2], scores[:2])
    assert bare == tmp_path / "other" / "other_top.csv"
    assert bare.read_text().splitlines()[0] == "timestamp,value,anomaly_score"
