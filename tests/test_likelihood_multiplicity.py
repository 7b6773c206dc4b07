"""The anomaly likelihood's bar rises with a series' length (detectors/likelihood.py
``multiplicity``), and the NAB figures README.md and docs/detection.md give for it."""
from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from detectors.anomaly import AnomalyScore
from detectors.likelihood import LOG_FLOOR, AnomalyLikelihood
from detectors.state import decode_state, encode_state

NAB_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"


def test_the_tail_is_multiplied_by_the_values_seen_over_multiplicity():
    corrected, htm = AnomalyLikelihood(learning=100, multiplicity=1000), AnomalyLikelihood(learning=100,
                                                                                          multiplicity=10**9)
    noise = random.Random(3)
    for n in range(3000):
        raw = noise.uniform(0.1, 0.3)
        if n in (500, 999, 1000, 2999):
            tail = htm._tail(0.9)
            expected = min(math.log(min(1.0, tail * max(1.0, n / 1000)) + 1e-10) / LOG_FLOOR, 1.0)
            assert corrected.score_one(0.9) == pytest.approx(expected)
            if n <= 1000:
                assert corrected.score_one(0.9) == htm.score_one(0.9)
        corrected.learn_one(raw)
        htm.learn_one(raw)
    assert corrected.score_one(0.9) < htm.score_one(0.9)


def test_a_checkpoint_written_before_the_correction_gets_it():
    lik = AnomalyLikelihood(learning=10)
    for raw in (0.1, 0.2) * 10:
        lik.learn_one(raw)
    state = lik.__getstate__()
    del state["multiplicity"]
    old = AnomalyLikelihood.__new__(AnomalyLikelihood)
    old.__dict__.update(state)
    assert old.multiplicity == 5000 and old.score_one(0.9) == lik.score_one(0.9)
    assert decode_state(encode_state(old)).score_one(0.9) == lik.score_one(0.9)
    assert AnomalyScore()._likelihood.multiplicity == 5000


@pytest.mark.system
@pytest.mark.skipif(not NAB_CORPUS.is_dir(), reason="the NAB corpus (../shared/data/nab) is not here")
@pytest.mark.parametrize("subset, standard, low_fp, low_fn", [
    ("all", 69.74, 58.23, 75.24), ("odd", 72.49, 59.99, 78.24), ("even", 67.11, 56.56, 72.39)])
def test_nab_figures_as_documented(subset, standard, low_fp, low_fn):
    from pipeline.backtest import run_nab

    scores = run_nab(NAB_CORPUS, subset, jobs=2)["nab"]
    assert scores["standard"] == pytest.approx(standard, abs=0.005)
    assert scores["reward_low_FP_rate"] == pytest.approx(low_fp, abs=0.005)
    assert scores["reward_low_FN_rate"] == pytest.approx(low_fn, abs=0.005)
