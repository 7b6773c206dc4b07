"""The default detector stack on real data: cabai rawit merah, 18 West Java markets, May-Aug 2021.

Fixture: tests/fixtures/pihps-cabai-rawit-merah-2021-05-08.csv, rows 2021-05-01..2021-08-31 of
/work/shared/data/pihps-jabar/cabai-rawit-merah.csv (Bank Indonesia PIHPS, unchanged). It holds
two real entry errors at Pasar Agung (Rp 387.500 on 2021-07-14, Rp 140.000 on 2021-08-25, both
several times every other market that day) and a market-wide rise on 2021-06-21.
"""
from __future__ import annotations

import csv
import pickle
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from detectors.stack import DetectorStack, StackConfig
from base.catalog import slugify

FIXTURE = Path(__file__).parent / "fixtures" / "pihps-cabai-rawit-merah-2021-05-08.csv"
DAY = 86400.0
TEMPORAL = {"zscore", "iqr", "forecast"}


def day_ts(iso: str) -> float:
    d = date.fromisoformat(iso)
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp()


def load_ticks() -> list[dict]:
    """Ticks in date order (markets alphabetical within a day), empty prices skipped."""
    ticks = []
    with FIXTURE.open(newline="") as f:
        for row in csv.DictReader(f):
            if not row["price"]:
                continue
            ticks.append({
                "commodity": slugify(row["commodity"]), "market": slugify(row["market"]),
                "province": "32", "price": float(row["price"]), "ts": day_ts(row["date"]),
                "date": row["date"],
            })
    ticks.sort(key=lambda t: (t["ts"], t["market"]))
    return ticks


@pytest.fixture(scope="module")
def ticks() -> list[dict]:
    return load_ticks()


@pytest.fixture(scope="module")
def replay(ticks) -> tuple[DetectorStack, list[tuple[dict, dict]]]:
    stack = DetectorStack()
    return stack, [(tick, stack.process(tick)) for tick in ticks]


def verdict_of(replayed, iso: str, market: str) -> dict:
    return next(v for t, v in replayed if t["date"] == iso and t["market"] == market)


def next_verdict(replayed, iso: str, market: str) -> tuple[dict, dict]:
    series = [(t, v) for t, v in replayed if t["market"] == market]
    index = next(i for i, (t, _) in enumerate(series) if t["date"] == iso)
    return series[index + 1]


def last_prices(ticks: list[dict]) -> dict[str, float]:
    return {t["market"]: t["price"] for t in ticks}


def test_verdict_has_the_documented_shape(replay):
    _, replayed = replay
    first_tick, first = replayed[0]
    assert set(first) == {"scores", "fired", "reasons", "quarantined", "expected"}
    assert first["scores"] == {} and first["expected"] is None  # nothing is warm yet
    _, late = replayed[-1]
    assert set(late["scores"]) == {"zscore", "iqr", "forecast", "crossmarket", "surge"}
    assert set(late["expected"]) == {"level", "lo", "hi"}
    assert late["expected"]["lo"] < late["expected"]["level"] < late["expected"]["hi"]
    assert all(score >= 0.0 for _, v in replayed for score in v["scores"].values())
    assert all(v["fired"] == sorted(v["reasons"]) for _, v in replayed)


@pytest.mark.parametrize("iso, price", [("2021-07-14", 387500.0), ("2021-08-25", 140000.0)])
def test_entry_error_is_quarantined_and_not_learned(replay, iso, price):
    _, replayed = replay
    verdict = verdict_of(replayed, iso, "pasar-agung")
    assert verdict["quarantined"] is True
    assert {"crossmarket", "zscore", "forecast"} <= set(verdict["fired"])
    assert "Rp " + f"{int(price):,}".replace(",", ".") in verdict["reasons"]["crossmarket"]
    following, after = next_verdict(replayed, iso, "pasar-agung")
    # Had the error been learned, the return to normal would itself look like a crash. (The
    # commodity-wide surge may fire: July 2021 was a real rise across the markets.)
    assert set(after["fired"]) <= {"surge"} and after["quarantined"] is False
    assert after["expected"]["hi"] < price / 2
    assert following["price"] < price / 3


def test_quarantine_is_rare_on_the_real_panel(replay):
    _, replayed = replay
    quarantined = [(t["date"], t["market"]) for t, v in replayed if v["quarantined"]]
    assert ("2021-07-14", "pasar-agung") in quarantined
    assert ("2021-08-25", "pasar-agung") in quarantined
    assert len(quarantined) <= 8, quarantined
    temporal = [v for _, v in replayed if TEMPORAL & set(v["fired"])]
    assert len(temporal) >= 5 * len(quarantined)


def test_market_wide_rise_is_learned_not_quarantined(replay):
    _, replayed = replay
    rise = [(t, v) for t, v in replayed if t["date"] == "2021-06-21"]
    moved = [(t, v) for t, v in rise if TEMPORAL & set(v["fired"])]
    assert len(moved) >= 4
    assert not any(v["quarantined"] for _, v in rise)
    # Learned: where the price held the next day, the z-score of the change is calm again.
    held = 0
    for tick, verdict in moved:
        following, after = next_verdict(replayed, "2021-06-21", tick["market"])
        if "zscore" in verdict["fired"] and following["price"] == tick["price"]:
            held += 1
            assert "zscore" not in after["fired"]
    assert held >= 1


def test_sudden_market_wide_jump_is_learned(ticks):
    stack = DetectorStack()
    for tick in ticks:
        stack.process(tick)
    ts = ticks[-1]["ts"] + DAY
    verdicts = [
        stack.process({"commodity": "cabai-rawit-merah", "market": m, "price": p * 1.3, "ts": ts})
        for m, p in sorted(last_prices(ticks).items())
    ]
    assert sum(bool(TEMPORAL & set(v["fired"])) for v in verdicts) >= 12
    assert not any(v["quarantined"] for v in verdicts)


def tight_panel_days(days: range, factor: float = 1.0, error: dict | None = None) -> list[list[dict]]:
    """Five markets that agree within a few percent, reporting each day a second apart."""
    base = [45000, 46000, 44500, 45500, 47000]
    batches = []
    for day in days:
        batch = []
        for i, price in enumerate(base):
            market = f"pasar-{i}"
            price = (price + 500 * (day % 3)) * factor
            batch.append({"commodity": "cabai", "market": market, "province": "32",
                          "price": (error or {}).get(market, price), "ts": day * DAY + i})
        batches.append(batch)
    return batches


def test_a_batch_sees_its_own_market_wide_jump():
    one_by_one, batched = DetectorStack(), DetectorStack()
    for batch in tight_panel_days(range(20)):
        batched.process_batch(batch)
        for tick in batch:
            one_by_one.process(tick)
    jump = tight_panel_days(range(20, 21), factor=1.6)[0]
    verdicts = batched.process_batch(jump)
    assert all(TEMPORAL & set(v["fired"]) for v in verdicts)
    assert not any(v["quarantined"] for v in verdicts)
    # One by one, the first market to report cannot be told from an entry error.
    assert one_by_one.process(jump[0])["quarantined"] is True


def test_an_entry_error_inside_a_batch_is_still_quarantined():
    stack = DetectorStack()
    for batch in tight_panel_days(range(20)):
        stack.process_batch(batch)
    verdicts = stack.process_batch(tight_panel_days(range(20, 21), error={"pasar-2": 445000.0})[0])
    assert [v["quarantined"] for v in verdicts] == [False, False, True, False, False]
    assert [v["fired"] for i, v in enumerate(verdicts) if i != 2] == [[]] * 4


def test_level_shift_at_one_market_is_accepted_after_a_run(ticks):
    config = StackConfig()
    stack = DetectorStack(config)
    for tick in ticks:
        stack.process(tick)
    prices = last_prices(ticks)
    outcome = []
    for k in range(1, 9):
        ts = ticks[-1]["ts"] + k * DAY
        for market, price in sorted(prices.items()):
            if market == "pasar-kosambi":
                price *= 2.0
            verdict = stack.process(
                {"commodity": "cabai-rawit-merah", "market": market, "price": price, "ts": ts}
            )
            if market == "pasar-kosambi":
                outcome.append(verdict)
    quarantined = [v["quarantined"] for v in outcome]
    run = config.shift_after
    assert quarantined[: run - 1] == [True] * (run - 1)
    assert quarantined[run - 1:] == [False] * (len(outcome) - run + 1)
    assert "crossmarket" not in outcome[-1]["fired"]


def test_one_market_alone_is_quarantined_only_on_strong_evidence():
    stack = DetectorStack()

    def tick(price: float, day: int) -> dict:
        return {"commodity": "kopi", "market": "pasar-solo", "price": price, "ts": day * DAY}

    for day in range(20):
        stack.process(tick(30000.0 + 500 * (day % 3), day))
    move = stack.process(tick(36000.0, 20))
    assert "crossmarket" not in move["scores"]
    assert TEMPORAL & set(move["fired"]) and move["quarantined"] is False
    error = stack.process(tick(300000.0, 21))
    assert error["quarantined"] is True


def test_stack_pickles_mid_stream_and_continues_identically(ticks):
    half = len(ticks) // 2
    stack = DetectorStack()
    for tick in ticks[:half]:
        stack.process(tick)
    restored = pickle.loads(pickle.dumps(stack))
    # The engine's way: one series and one panel at a time into a fresh stack.
    pieced = DetectorStack()
    for key in stack.series_keys():
        pieced.set_series_state(key, pickle.loads(pickle.dumps(stack.series_state(key))))
    pieced.set_panel_state(
        "cabai-rawit-merah", pickle.loads(pickle.dumps(stack.panel_state("cabai-rawit-merah")))
    )
    pieced.set_surge_state(
        "cabai-rawit-merah", pickle.loads(pickle.dumps(stack.surge_state("cabai-rawit-merah")))
    )
    for tick in ticks[half:]:
        expected = stack.process(tick)
        assert restored.process(tick) == expected
        assert pieced.process(tick) == expected


def test_forecast_of_a_series_brackets_its_recent_prices(replay):
    stack, replayed = replay
    steps = stack.forecast(("cabai-rawit-merah", "pasar-kosambi"), 3)
    assert [s["step"] for s in steps] == [1, 2, 3]
    last = [t["price"] for t, _ in replayed if t["market"] == "pasar-kosambi"][-1]
    assert steps[0]["lo"] < last < steps[0]["hi"]
    assert stack.forecast(("cabai-rawit-merah", "pasar-nowhere"), 3) == []


def test_sweep_reports_stale_series_once_and_recovery(ticks):
    stack = DetectorStack()
    for tick in ticks:
        stack.process(tick)
    last = ticks[-1]["ts"]
    assert stack.sweep(last + DAY) == []
    stale = stack.sweep(last + 10 * DAY)
    assert len(stale) == 18 and all(h["state"] == "stale" for h in stale)
    agung = next(h for h in stale if h["market"] == "pasar-agung")
    assert agung == {"commodity": "cabai-rawit-merah", "market": "pasar-agung",
                     "state": "stale", "age": 10 * DAY, "expected_gap": DAY, "ts": last + 10 * DAY}
    assert stack.sweep(last + 10 * DAY) == []
    stack.process({"commodity": "cabai-rawit-merah", "market": "pasar-agung",
                   "price": 30000.0, "ts": last + 10 * DAY})
    recovered = stack.sweep(last + 10 * DAY + 60.0)
    assert [(h["market"], h["state"]) for h in recovered] == [("pasar-agung", "ok")]


def test_sweep_judges_each_series_at_its_own_time_when_given_one(ticks):
    stack = DetectorStack()
    for tick in ticks:
        stack.process(tick)
    last = ticks[-1]["ts"]
    own = {"pasar-agung": last + 10 * DAY}  # only this series' clock has moved on
    stale = stack.sweep(lambda series: own.get(series[1], last + DAY))
    assert [(h["market"], h["state"], h["ts"]) for h in stale] == [("pasar-agung", "stale", last + 10 * DAY)]


def test_ceiling_fires_above_het_and_does_not_quarantine():
    stack = DetectorStack(ceilings={"beras-medium": 13500.0, ("beras-medium", "94"): 15500.0})

    def tick(price: float, province: str = "32") -> dict:
        return {"commodity": "beras-medium", "market": "pasar-kosambi", "province": province,
                "price": price, "ts": 0.0}

    below = stack.process(tick(13000.0))
    assert below["scores"]["ceiling"] == pytest.approx(13000 / 13500)
    assert below["fired"] == []
    above = stack.process(tick(14500.0))
    assert above["fired"] == ["ceiling"] and above["quarantined"] is False
    assert above["reasons"]["ceiling"] == "Rp 14.500 is 7% above the legal ceiling (HET) Rp 13.500"
    assert stack.process(tick(14500.0, province="94"))["fired"] == []
    assert "ceiling" not in DetectorStack().process(tick(14500.0))["scores"]
