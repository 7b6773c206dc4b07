"""Engine CPU per tick: the detector stack, and the checkpoint codec against pickle, best of N runs.

What the engine spends its core on apart from Redis (issue: "engine CPU per tick at most
75 us"): the default stack in batches of the engine's size (``process_batch``), and encoding
one series' state document (base/state.py, what ``Engine.commit`` writes for every series a
batch touched) and decoding it (a restart). Pickle of the same state is measured in the same
run as the baseline the codec replaced. The ticks are the real PIHPS series (bench/data.py).

Times are the CPU time of this process (``time.process_time``), what the issue counts: on a
shared machine other work slows the wall clock of a run far more than its CPU time. Each figure
is the best of ``--repeat`` whole runs (a fresh stack each run).

    python -m bench.engine_cpu               # 60,000 ticks, best of 5
    python -m bench.engine_cpu --quick       # 20,000 ticks, best of 3
    python -m bench engine_cpu               # the same figures in the bench table
"""
from __future__ import annotations

import argparse
import pickle
import time
from collections.abc import Callable
from typing import Any

from bench.data import load_pihps_days, series_count, tick_stream
from base.catalog import load_catalog
from detectors.ceiling import ceilings_of
from detectors.stack import DetectorStack
from detectors.state import decode_state, encode_state

ENGINE_BATCH = 500  # PASARWATCH_ENGINE_BATCH's default
QUICK = (20_000, 3)
FULL = (60_000, 5)
CODEC_ROUNDS = 20  # passes over every series' state per codec figure


def _best(repeat: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeat))


def _stack_run(ticks: list[dict], ceilings: dict) -> tuple[float, DetectorStack]:
    """Microseconds per tick of one fresh stack over ``ticks`` in the engine's batches."""
    stack = DetectorStack(ceilings=ceilings)
    batches = [ticks[i:i + ENGINE_BATCH] for i in range(0, len(ticks), ENGINE_BATCH)]
    started = time.process_time()
    for batch in batches:
        stack.process_batch(batch)
    return (time.process_time() - started) * 1e6 / len(ticks), stack


def _per_item(items: list[Any], step: Callable[[Any], object]) -> float:
    """Microseconds per item of ``step`` over ``items``, CODEC_ROUNDS times."""
    started = time.process_time()
    for _ in range(CODEC_ROUNDS):
        for item in items:
            step(item)
    return (time.process_time() - started) * 1e6 / (CODEC_ROUNDS * len(items))


def measure(ticks_count: int, repeat: int) -> dict:
    days, source = load_pihps_days()
    ticks = [{**t, "unit": "kg"} for t in tick_stream(days, ticks_count)]
    ceilings = ceilings_of(load_catalog())
    stack_us, stack = float("inf"), None
    for _ in range(repeat):
        us, stack = _stack_run(ticks, ceilings)
        stack_us = min(stack_us, us)
    assert stack is not None
    states = [stack.series_state(key) for key in stack.series_keys()]
    blobs = [encode_state(state) for state in states]
    pickles = [pickle.dumps(state, pickle.HIGHEST_PROTOCOL) for state in states]
    assert all(type(decode_state(blob)) is type(state) for blob, state in zip(blobs, states))
    return {
        "data": source, "ticks": len(ticks), "series": series_count(ticks), "repeat": repeat,
        "stack_us_per_tick": stack_us,
        "encode_us_per_series": _best(repeat, lambda: _per_item(states, encode_state)),
        "decode_us_per_series": _best(repeat, lambda: _per_item(blobs, decode_state)),
        "pickle_dumps_us_per_series": _best(repeat, lambda: _per_item(
            states, lambda state: pickle.dumps(state, pickle.HIGHEST_PROTOCOL))),
        "pickle_loads_us_per_series": _best(repeat, lambda: _per_item(pickles, pickle.loads)),
        "document_bytes": sum(map(len, blobs)) / len(blobs),
        "pickle_bytes": sum(map(len, pickles)) / len(pickles),
    }


def run(quick: bool) -> dict:
    """For ``python -m bench``: the same figures as rows of the table."""
    m = measure(*(QUICK if quick else FULL))
    rows = [
        {"metric": f"engine cpu: stack, batches of {ENGINE_BATCH} (best of {m['repeat']})",
         "ours": round(m["stack_us_per_tick"], 2), "unit": "us/tick", "goal": "<= 75 us/tick engine"},
        {"metric": "engine cpu: encode_state one series (vs pickle.dumps)",
         "ours": round(m["encode_us_per_series"], 2), "baseline": round(m["pickle_dumps_us_per_series"], 2),
         "ratio": round(m["encode_us_per_series"] / m["pickle_dumps_us_per_series"], 2), "unit": "us/series"},
        {"metric": "engine cpu: decode_state one series (vs pickle.loads)",
         "ours": round(m["decode_us_per_series"], 2), "baseline": round(m["pickle_loads_us_per_series"], 2),
         "ratio": round(m["decode_us_per_series"] / m["pickle_loads_us_per_series"], 2), "unit": "us/series"},
    ]
    return {"name": "engine_cpu", "rows": rows, "details": m}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.engine_cpu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK[0]:,} ticks, best of {QUICK[1]}")
    parser.add_argument("--ticks", type=int, help="ticks per run")
    parser.add_argument("--repeat", type=int, help="runs; the best is reported")
    args = parser.parse_args(argv)
    ticks, repeat = QUICK if args.quick else FULL
    m = measure(args.ticks or ticks, args.repeat or repeat)
    print(f"data {m['data']}: {m['ticks']:,} ticks, {m['series']} series, best of {m['repeat']}")
    print(f"stack (process_batch of {ENGINE_BATCH})   {m['stack_us_per_tick']:8.1f} us/tick")
    print(f"encode_state                      {m['encode_us_per_series']:8.1f} us/series"
          f"   pickle.dumps {m['pickle_dumps_us_per_series']:6.1f} us/series")
    print(f"decode_state                      {m['decode_us_per_series']:8.1f} us/series"
          f"   pickle.loads {m['pickle_loads_us_per_series']:6.1f} us/series")
    print(f"document size                     {m['document_bytes']:8.0f} bytes"
          f"      pickle       {m['pickle_bytes']:6.0f} bytes")


if __name__ == "__main__":
    main()
