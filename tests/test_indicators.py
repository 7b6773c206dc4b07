"""Food-price indicators (ALPS, IPA), the Eid calendar they count from, and the anomaly score.

Real data: tests/fixtures/pihps-cabai-5-markets-2020-2022.csv, cabai rawit merah at five West
Java markets, 2020-2022 (rows of /work/shared/data/pihps-jabar/cabai-rawit-merah.csv, Bank
Indonesia PIHPS, unchanged). It holds the chilli spikes of December 2021 and June-July 2022.
"""
from __future__ import annotations

import math
import pickle
import random
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pytest

from detectors.alps import ALPS, classify
from detectors.anomaly import AnomalyScore
from detectors.ipa import IPA
from detectors.lebaran import (
    IDUL_ADHA_DATES,
    IDUL_FITRI_DATES,
    days_from_idul_adha,
    days_from_idul_fitri,
    days_since_idul_fitri,
    idul_adha,
    idul_fitri,
)
from detectors.likelihood import AnomalyLikelihood
from detectors.recorded import read_paths
from pipeline.replay import reporting_days
from detectors.season import local_day, lunar_period, lunar_season, regression_terms
from detectors.stack import DetectorStack
from base.catalog import load_catalog
from rules.expressions import compile_condition

FIXTURE = Path(__file__).parent / "fixtures" / "pihps-cabai-5-markets-2020-2022.csv"
DAY = 86400.0
WIB_10AM_2015 = 1420081200.0  # 2015-01-01 10:00 WIB


def daily(start: float, days: int):
    return [start + d * DAY for d in range(days)]


# -- the Eid calendar ---------------------------------------------------------------------------


@pytest.mark.parametrize("year, fitri, adha", [
    (2019, date(2019, 6, 5), date(2019, 8, 11)),
    (2022, date(2022, 5, 2), date(2022, 7, 10)),
    (2023, date(2023, 4, 22), date(2023, 6, 29)),
    (2025, date(2025, 3, 31), date(2025, 6, 6)),
])
def test_government_feast_dates(year, fitri, adha):
    assert idul_fitri(year) == fitri and idul_adha(year) == adha


def test_table_agrees_with_the_umm_al_qura_calendar_within_a_day():
    import hijridate
    for table, month, day in ((IDUL_FITRI_DATES, 10, 1), (IDUL_ADHA_DATES, 12, 10)):
        for feast in table:
            hijri_year = hijridate.Gregorian(feast.year, feast.month, feast.day).to_hijri().year
            computed = date(*hijridate.Hijri(hijri_year, month, day).to_gregorian().datetuple())
            assert abs((feast - computed).days) <= 1, feast


def test_feasts_move_about_eleven_days_a_year():
    gaps = [(b - a).days for a, b in zip(IDUL_FITRI_DATES, IDUL_FITRI_DATES[1:])]
    assert all(353 <= gap <= 356 for gap in gaps)
    gaps = [(b - a).days for a, b in zip(IDUL_ADHA_DATES, IDUL_ADHA_DATES[1:])]
    assert all(353 <= gap <= 356 for gap in gaps)


def test_days_are_counted_from_the_feasts():
    assert days_from_idul_fitri(date(2023, 4, 21)) == -1
    assert days_since_idul_fitri(date(2023, 4, 21)) == 354  # still the 2022 cycle
    assert days_since_idul_fitri(date(2023, 4, 22)) == 0
    assert days_from_idul_adha(date(2024, 6, 10)) == -7


def test_seasonal_terms_follow_the_feasts_not_the_month():
    ramadan_2019, ramadan_2024 = date(2019, 5, 20), date(2024, 3, 25)
    assert regression_terms(ramadan_2019)[4] == regression_terms(ramadan_2024)[4] == 1.0
    assert regression_terms(date(2024, 5, 20))[4] == 0.0  # May 2024 is after Lebaran
    assert lunar_season(date(2019, 6, 5)) == lunar_season(date(2024, 4, 10)) == 0
    assert lunar_period(date(2024, 4, 10)) - lunar_period(date(2019, 6, 5)) == 5 * 12


# -- ALPS ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("score, name", [(None, "normal"), (0.0, "normal"), (0.24, "normal"),
                                         (0.25, "stress"), (0.99, "stress"), (1.0, "alert"),
                                         (1.99, "alert"), (2.0, "crisis"), (7.0, "crisis")])
def test_alps_classes_are_wfps(score, name):
    assert classify(score) == name


def test_alps_waits_for_a_year_of_history():
    det = ALPS()
    for ts in daily(WIB_10AM_2015, 300):
        det.learn_one({"price": 30000.0, "ts": ts})
    assert det.score_one({"price": 90000.0, "ts": WIB_10AM_2015 + 300 * DAY}) is None


def test_alps_expects_the_lebaran_rise_and_flags_an_unseasonal_one():
    noise = random.Random(3)
    start = WIB_10AM_2015

    def price(ts: float) -> float:
        ramadan = regression_terms(local_day(ts))[4]  # +20% every Ramadan and Lebaran week
        return 40000.0 * math.exp(0.2 * ramadan + 0.02 * noise.gauss(0.0, 1.0))

    det = ALPS()
    for ts in daily(start, 4 * 365):
        det.learn_one({"price": price(ts), "ts": ts})
    ramadan = datetime(2019, 5, 25, 10).timestamp()  # Idul Fitri 2019 was 5 June
    assert det.classify(det.score_one({"price": 40000.0 * math.exp(0.2), "ts": ramadan})) == "normal"
    october = datetime(2019, 10, 10, 10).timestamp()
    assert det.classify(det.score_one({"price": 40000.0 * math.exp(0.2), "ts": october})) == "crisis"


# -- IPA -----------------------------------------------------------------------------------------


def seasonal_price(ts: float) -> float:
    """The same Eid-cycle pattern every year: up to 8% above or below Rp 25.000."""
    phase = 2 * math.pi * days_since_idul_fitri(local_day(ts)) / 354.367
    return 25000.0 * math.exp(0.08 * math.sin(phase))


def seasonal_series(years: float, seed: int = 11):
    noise = random.Random(seed)
    for ts in daily(WIB_10AM_2015, int(years * 365)):
        yield {"price": seasonal_price(ts) * math.exp(0.03 * noise.gauss(0.0, 1.0)), "ts": ts}


def test_ipa_needs_two_earlier_years_of_the_season():
    det = IPA()
    ticks = list(seasonal_series(3.5))
    scored = []
    for x in ticks:
        scored.append(det.score_one(x))
        det.learn_one(x)
    first = next(i for i, s in enumerate(scored) if s is not None)
    assert ticks[first]["ts"] - ticks[0]["ts"] > 2 * 354 * DAY
    assert all(s is not None for s in scored[first + 400:])


def test_ipa_is_normal_on_a_repeating_season_and_alerts_on_a_sustained_jump():
    det = IPA()
    for x in seasonal_series(5):
        det.learn_one(x)
    ts = WIB_10AM_2015 + 5 * 365 * DAY
    assert det.classify(det.score_one({"price": seasonal_price(ts), "ts": ts})) == "normal"
    # A monthly indicator: one dear day barely moves it, a month of them does.
    one_day = det.score_one({"price": seasonal_price(ts) * 1.3, "ts": ts})
    for day in range(30):
        t = ts + day * DAY
        det.learn_one({"price": seasonal_price(t) * 1.3, "ts": t})
    t = ts + 30 * DAY
    month = det.score_one({"price": seasonal_price(t) * 1.3, "ts": t})
    assert month > one_day and det.classify(month) == "crisis"


def test_ipa_weight_is_checked_and_moves_the_blend():
    with pytest.raises(ValueError):
        IPA(weight=1.5)
    quarterly, annual = IPA(weight=1.0), IPA(weight=0.0)
    for x in seasonal_series(4):
        quarterly.learn_one(x)
        annual.learn_one(x)
    probe = {"price": 40000.0, "ts": WIB_10AM_2015 + 4 * 365 * DAY}
    assert quarterly.value(probe) != annual.value(probe)


# -- in the stack, for rules ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def replayed():
    ticks = read_paths([FIXTURE], load_catalog())
    stack = DetectorStack()
    out = []
    for day in reporting_days(ticks):
        out.extend(zip(day, stack.process_batch(day)))
    return stack, out


def month_classes(replayed, market: str, month: str, name: str) -> Counter:
    return Counter(v.get("classes", {}).get(name, "-") for t, v in replayed
                   if t["market"] == market and local_day(t["ts"]).isoformat().startswith(month))


def test_indicators_classify_real_chilli_spikes(replayed):
    _, out = replayed
    assert all("classes" not in v for t, v in out if local_day(t["ts"]) < date(2020, 12, 1))
    # Cabai rawit doubled in December 2021 and again in June 2022 (Rp 35.000 -> Rp 90.000).
    for month in ("2021-12", "2022-06"):
        counts = month_classes(out, "pasar-kosambi", month, "alps")
        assert counts["crisis"] + counts["alert"] > counts["normal"]
    # A quiet month of the same series stays normal.
    assert month_classes(out, "pasar-kosambi", "2022-03", "alps")["normal"] >= 20


def test_indicator_verdicts_carry_score_class_and_reason(replayed):
    _, out = replayed
    late = [v for t, v in out if local_day(t["ts"]) >= date(2022, 12, 1)]
    assert all({"alps", "ipa"} <= set(v["classes"]) for v in late)
    for verdict in late:
        for name in ("alps", "ipa"):
            score = verdict["scores"][name]
            assert score >= 0.0
            assert (name in verdict["fired"]) == (score >= 1.0)
            if name in verdict["fired"]:
                assert "(" + verdict["classes"][name] + ")" in verdict["reasons"][name]


def test_rules_can_name_the_indicators():
    condition = compile_condition("alps.score >= 1 and not quarantined", {"alps", "ipa"})
    verdict = {"scores": {"alps": 1.4}, "fired": ["alps"], "classes": {"alps": "alert"}}
    assert condition.evaluate(verdict, {"quarantined": False})
    assert not condition.evaluate({"scores": {"alps": 0.3}, "fired": []}, {"quarantined": False})


@pytest.mark.parametrize("factory", [ALPS, IPA, AnomalyScore])
def test_indicator_state_pickles_and_continues_identically(factory):
    det = factory()
    noise = random.Random(5)
    ticks = [{"price": 30000.0 * math.exp(0.05 * noise.gauss(0, 1)), "ts": ts}
             for ts in daily(WIB_10AM_2015, 3 * 365)]
    for x in ticks[:-50]:
        det.learn_one(x)
    copy = pickle.loads(pickle.dumps(det))
    for x in ticks[-50:]:
        assert det.score_one(x) == copy.score_one(x)
        det.learn_one(x)
        copy.learn_one(x)


def test_old_checkpoints_gain_the_new_detectors(replayed):
    stack, _ = replayed
    state = stack.series_state(("cabai-rawit-merah", "pasar-kosambi"))
    old = pickle.loads(pickle.dumps(state))
    for name in ("anomaly", "alps", "ipa"):
        del old.__dict__[name]  # as pickled before these detectors existed
    restored = pickle.loads(pickle.dumps(old))
    assert isinstance(restored.alps, ALPS) and isinstance(restored.ipa, IPA)


# -- the general anomaly score -------------------------------------------------------------------


def test_anomaly_rests_after_a_detection_and_fires_again_later():
    det = AnomalyScore(window=100, warmup=20, rest=10, learning=30)
    values = [float(i % 4) for i in range(80)] + [50.0] + [float(i % 4) for i in range(30)] + [90.0]
    fired = []
    for i, v in enumerate(values):
        score = det.score_one({"price": v, "ts": float(i)})
        if score is not None and score >= det.threshold:
            fired.append(i)
        det.learn_one({"price": v, "ts": float(i)})
    assert fired == [80, 111]


def test_a_quarantined_value_does_not_widen_the_range():
    det = AnomalyScore(window=100, warmup=20, rest=0, rest_share=0.0, learning=30)
    for i in range(60):
        det.learn_one({"price": 10.0 + i % 3, "ts": float(i)})
    det.observe({"price": 500.0, "ts": 60.0})  # an entry error, quarantined by the stack
    assert det.score_one({"price": 40.0, "ts": 61.0}) >= det.threshold


def test_a_value_quarantined_again_joins_the_range():
    det = AnomalyScore(window=100, warmup=20, rest=0, rest_share=0.0, learning=30)
    for i in range(60):
        det.learn_one({"price": 10.0 + i % 3, "ts": float(i)})
    det.observe({"price": 2.0, "ts": 60.0})  # a floor the metric drops to now and then
    assert det.score_one({"price": 2.0, "ts": 61.0}) >= det.threshold
    det.observe({"price": 2.0, "ts": 61.0})  # the second time: a value the series takes
    assert det.score_one({"price": 2.0, "ts": 62.0}) < det.threshold
    assert det.score_one({"price": 1.0, "ts": 62.0}) >= det.threshold  # lower still is news


def test_likelihood_is_low_for_a_usual_raw_score_and_high_for_a_burst():
    lik = AnomalyLikelihood(learning=100)
    noise = random.Random(9)
    for _ in range(600):
        lik.learn_one(noise.uniform(0.1, 0.3))
    assert lik.score_one(0.2) < 0.2
    scores = []
    for _ in range(10):
        scores.append(lik.score_one(1.0))
        lik.learn_one(1.0)
    assert max(scores) >= 0.5
    # Only the first red value keeps its score; the next ones are reported at the yellow level.
    assert scores.count(max(scores)) == 1
