"""A checkpoint written by an earlier version still loads: the engine state documents of
format v1, saved from a real run (tests/fixtures/checkpoint-v1/, made by ``python -m
tests.test_checkpoint_versions``), restore into today's classes and the detectors go on exactly
where they were. Moving or renaming a class that is in a checkpoint fails here first: keep its
registered name (``detectors.state.register(cls, name=...)``) or add a migration."""
from __future__ import annotations

import math
from pathlib import Path

from detectors import recorded
from detectors.crossmarket import CrossMarket
from detectors.series import SeriesState
from detectors.stack import DetectorStack
from pipeline.replay import reporting_days
from base.catalog import load_catalog
from rules.lifecycle import AlertState
from server.checkpoint import decode_state, encode_state
from base.config import PROJECT_ROOT

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "checkpoint-v1"
SAMPLE = PROJECT_ROOT / "tests" / "fixtures" / "pihps-jabar-sample.csv"
SPLIT = 20  # reporting days before the checkpoint; the rest are judged after it


def days() -> list[list[dict]]:
    return list(reporting_days(recorded.read_path(SAMPLE, load_catalog())))


def fed_stack(upto: int) -> DetectorStack:
    stack = DetectorStack()
    for day in days()[:upto]:
        stack.process_batch(day)
    return stack


def write_fixture(directory: Path = FIXTURE) -> None:
    """Save the state after SPLIT days (run once per format version; commit the files)."""
    from rules.lifecycle import RungState

    stack = fed_stack(SPLIT)
    directory.mkdir(parents=True, exist_ok=True)
    for commodity, market in stack.series_keys():
        (directory / f"series-{commodity}-{market}.json").write_bytes(encode_state(stack.series_state((commodity, market))))
    for commodity in {c for c, _ in stack.series_keys()}:
        (directory / f"panel-{commodity}.json").write_bytes(encode_state(stack.panel_state(commodity)))
    alert = AlertState(rungs=[RungState(true_ticks=2, true_since=1.0, active=True)], top=0, started_at=1.0,
                       fired_price=387500.0, sources=["hp-1"])
    (directory / "alert.json").write_bytes(encode_state(alert))


# Detectors added after the fixture was written: a v1 checkpoint has no state of theirs, so they
# start fresh on it (warming up); every detector it has state of goes on exactly.
NEWER = {"surge"}


def test_a_v1_checkpoint_restores_and_the_detectors_go_on_where_they_were():
    files = sorted(FIXTURE.glob("series-*.json"))
    assert len(files) >= 30  # both commodities, every market of the sample
    restored = DetectorStack()
    for path in files:
        state = decode_state(path.read_bytes(), SeriesState)
        _, commodity_market = path.stem.split("-", 1)
        commodity = next(c for c in ("bawang-merah", "cabai-rawit-merah") if commodity_market.startswith(c + "-"))
        restored.set_series_state((commodity, commodity_market[len(commodity) + 1:]), state)
    for path in FIXTURE.glob("panel-*.json"):
        restored.set_panel_state(path.stem[len("panel-"):], decode_state(path.read_bytes(), CrossMarket))
    uninterrupted = fed_stack(SPLIT)
    for day in days()[SPLIT:]:
        for mine, theirs in zip(restored.process_batch(day), uninterrupted.process_batch(day)):
            assert mine["quarantined"] == theirs["quarantined"]
            assert [n for n in mine["fired"] if n not in NEWER] == [n for n in theirs["fired"] if n not in NEWER]
            assert all(math.isclose(mine["scores"][n], s, rel_tol=1e-12)
                       for n, s in theirs["scores"].items() if n not in NEWER)


def test_a_v1_rule_state_restores():
    alert = decode_state((FIXTURE / "alert.json").read_bytes(), AlertState)
    assert alert.firing and alert.fired_price == 387500.0 and alert.sources == ["hp-1"]
    assert alert.rungs[0].true_ticks == 2


if __name__ == "__main__":
    write_fixture()
