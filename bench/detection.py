"""Detection cost: microseconds per tick for each detector alone, the default stack, and the engine.

Ticks are the real PIHPS series in reporting order (every market of a day, then the next
day). Each detector runs as the stack would run it (score_one, then learn_one) with the
stack's own default configuration. The stack is timed tick by tick (``process``) and in
batches of the engine's size (``process_batch``, as the engine calls it); "stack + rules"
adds the rule evaluation the engine does for each verdict (no Redis); "checkpoint" is
encoding one series' state as a state document (detectors/state.py), which the engine does
once per series touched by a batch, and "restore" decoding it, as the engine's start and the
forecast API do. The timer costs about 0.1 us a call.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable

import numpy as np

from bench.data import load_pihps_days, series_count, tick_stream
from detectors.ceiling import CeilingPrice
from detectors.stack import DetectorStack
from detectors.state import decode_state, encode_state
from base.catalog import load_catalog
from rules.engine import RuleEngine
from rules.rulebook import Rulebook
from base.config import PROJECT_ROOT
from detectors.ceiling import ceilings_of
from detectors.stack import DETECTOR_NAMES

QUICK_TICKS = 30_000
FULL_TICKS = 200_000
ENGINE_BATCH = 500  # PASARWATCH_ENGINE_BATCH's default


def _timed(ticks: list[dict], step: Callable[[dict], object]) -> np.ndarray:
    """Nanoseconds of ``step`` for each tick."""
    out = np.empty(len(ticks), dtype=np.int64)
    clock = time.perf_counter_ns
    for i, tick in enumerate(ticks):
        start = clock()
        step(tick)
        out[i] = clock() - start
    return out


def _per_series(factory: Callable[[], object], key: Callable[[dict], object]) -> Callable[[dict], None]:
    """score_one then learn_one on the detector of the tick's series (created on first sight)."""
    detectors: dict = {}

    def step(tick: dict) -> None:
        k = key(tick)
        detector = detectors.get(k)
        if detector is None:
            detector = detectors[k] = factory()
        x = {"price": tick["price"], "ts": tick["ts"], "market": tick["market"]}
        detector.score_one(x)
        detector.learn_one(x)

    return step


def _templates(ceilings: dict, first: dict) -> dict[str, object]:
    """One detector of each kind the default stack runs, with the stack's own configuration.

    Taken from a stack that has seen one tick, through its public state (the detectors of a
    series' state, and the commodity's cross-market panel), so the benchmark follows the
    stack as detectors are added without knowing how the stack builds them.
    """
    stack = DetectorStack(ceilings=ceilings)
    stack.process(first)
    series = stack.series_state((first["commodity"], first["market"]))
    found = {field.name: getattr(series, field.name) for field in dataclasses.fields(series)}
    found["crossmarket"] = stack.panel_state(first["commodity"])
    return {name: detector for name, detector in found.items()
            if hasattr(detector, "score_one") and hasattr(detector, "learn_one")}


def _detector_steps(ceilings: dict, first: dict) -> dict[str, Callable[[dict], None]]:
    def series(tick: dict) -> tuple[str, str]:
        return tick["commodity"], tick["market"]

    steps = {}
    for name, template in _templates(ceilings, first).items():
        key = (lambda t: t["commodity"]) if name == "crossmarket" else series
        steps[name] = _per_series(lambda template=template: copy.deepcopy(template), key)
    steps["ceiling"] = _ceiling_step(ceilings)
    return steps


def _ceiling_step(ceilings: dict) -> Callable[[dict], None]:
    # Keyed by commodity, or by (commodity, province) where the ceiling is regional; as the stack.
    detectors = {key: CeilingPrice(value) for key, value in ceilings.items()}
    missing = CeilingPrice(None)

    def step(tick: dict) -> None:
        detector = detectors.get((tick["commodity"], tick.get("province")))
        detector = detector or detectors.get(tick["commodity"], missing)
        x = {"price": tick["price"], "ts": tick["ts"], "market": tick["market"]}
        detector.score_one(x)
        detector.learn_one(x)

    return step


def _timed_batches(ticks: list[dict], step: Callable[[list[dict]], object], size: int) -> np.ndarray:
    """Nanoseconds per tick of ``step`` over consecutive batches of ``size`` ticks."""
    batches = [ticks[i:i + size] for i in range(0, len(ticks), size)]
    return _timed(batches, step)[:-1] // size if len(batches) > 1 else _timed(batches, step) // len(ticks)


def _stack_and_rules(ceilings: dict, catalog) -> Callable[[list[dict]], None]:
    """What the engine computes for a batch it read, without Redis: verdicts, then rules."""
    stack = DetectorStack(ceilings=ceilings)
    rules = RuleEngine(Rulebook(PROJECT_ROOT / "rules", catalog, set(DETECTOR_NAMES)).current)

    def step(batch: list[dict]) -> None:
        rules.on_batch(batch, stack.process_batch(batch))

    return step


def _row(name: str, ns: np.ndarray, per: str = "tick") -> dict:
    us = ns / 1000.0
    return {"metric": f"detection: {name}", "ours": round(float(np.median(us)), 2), "unit": f"us/{per} (median)",
            "p99": round(float(np.percentile(us, 99)), 2), "mean": round(float(us.mean()), 2),
            "samples": int(len(ns))}


def run(quick: bool) -> dict:
    days, source = load_pihps_days()
    raw = tick_stream(days, QUICK_TICKS if quick else FULL_TICKS)
    ticks = [{**t, "unit": "kg", "id": f"{i}-0", "source": None} for i, t in enumerate(raw)]
    catalog = load_catalog()
    ceilings = ceilings_of(catalog)
    rows = []
    for name, step in _detector_steps(ceilings, ticks[0]).items():
        rows.append(_row(name, _timed(ticks, step)))
    stack = DetectorStack(ceilings=ceilings)
    stack_ns = _timed(ticks, stack.process)
    rows.append(_row("whole default stack, tick by tick", stack_ns))
    batch_stack = DetectorStack(ceilings=ceilings)
    rows.append(_row(f"whole default stack, batches of {ENGINE_BATCH} (per tick)",
                     _timed_batches(ticks, batch_stack.process_batch, ENGINE_BATCH)))
    engine_ns = _timed_batches(ticks, _stack_and_rules(ceilings, catalog), ENGINE_BATCH)
    rows.append(_row(f"stack + rules, batches of {ENGINE_BATCH} (per tick)", engine_ns))
    states = [batch_stack.series_state(key) for key in batch_stack.series_keys()]
    repeated = states * max(1, 20_000 // len(states))
    rows.append(_row("checkpoint one series (encode_state)", _timed(repeated, encode_state), per="series"))
    blobs = [encode_state(state) for state in repeated]
    rows.append(_row("restore one series (decode_state)", _timed(blobs, decode_state), per="series"))
    stack_rate = 1e9 / float(stack_ns.mean())
    engine_rate = 1e9 / float(engine_ns.mean())
    rows.append({"metric": "detection: stack capacity, one core", "ours": round(stack_rate), "unit": "ticks/s",
                 "goal": ">= 20,000 ticks/s end to end"})
    rows.append({"metric": "detection: stack + rules capacity, one core", "ours": round(engine_rate),
                 "unit": "ticks/s"})
    return {"name": "detection", "rows": rows,
            "details": {"data": source, "ticks": len(ticks), "series": series_count(ticks)}}
