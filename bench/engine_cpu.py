"""Engine CPU per tick: the detector stack, and the checkpoint codec against pickle, best of N runs.

What the engine spends its core on apart from Redis (issue: "engine CPU per tick at most
75 us"): the default stack in batches of the engine's size (``process_batch``), and encoding
one series' state document (base/state.py, what ``Engine.commit`` writes for every series a
save covers) and decoding it (a restart), and the shipped rules over the stack's verdicts
(``RuleEngine.on_batch``). Pickle of the same state is measured in the same
run as the baseline the codec replaced. The ticks are the real PIHPS series (bench/data.py).
And the client's side of writing a batch's history entries to a real Redis: one EVAL of
``server.engine.HISTORY_XADD`` (what the engine sends) against an XADD per entry in one
transaction (what it sent before), the same entries, in the same run. And the engine itself in
this process (``engine_run``): ``Engine.process_entries`` over a backlog of the national mix of
bench/engines.py in 8 partitions, against a real Redis, its CPU time per tick (Redis's not
counted): what a commit costs on top of the stack, without the web process, HTTP or other
engines on the same two cores blurring it.

Times are the CPU time of this process (``time.process_time``), what the issue counts: on a
shared machine other work slows the wall clock of a run far more than its CPU time. Each figure
is the best of ``--repeat`` whole runs (a fresh stack each run).

    python -m bench.engine_cpu               # 60,000 ticks, best of 5
    python -m bench.engine_cpu --quick       # 20,000 ticks, best of 3
    python -m bench.engine_cpu --engine      # only the engine in process, 8,000 ticks, best of 3
    python -m bench engine_cpu               # the same figures in the bench table
"""
from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from collections.abc import Callable
from typing import Any

import orjson
import redis

from bench.data import load_pihps_days, series_count, tick_stream
from bench.engines import national_mix
from base.catalog import load_catalog
from detectors.ceiling import ceilings_of
from detectors.stack import DetectorStack
from detectors.state import decode_state, encode_state
from base import keys
from base.config import Settings
from detectors.stack import DETECTOR_NAMES
from rules.engine import RuleEngine
from rules.rulebook import Rulebook
from server.engine import HISTORY_XADD, Engine
from server.leases import Leases
from server.redis_process import start_redis

ENGINE_BATCH = 500  # PASARWATCH_ENGINE_BATCH's default
QUICK = (20_000, 3)
FULL = (60_000, 5)
CODEC_ROUNDS = 20  # passes over every series' state per codec figure
HISTORY_ROUNDS = 40  # batches of ENGINE_BATCH history entries per figure
ENGINE_TICKS = 8_000  # per engine_run (bench/engines.py's --quick count)
PARTITIONS = 8


def _best(repeat: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeat))


def _stack_run(ticks: list[dict], ceilings: dict) -> tuple[float, DetectorStack, list[dict]]:
    """Microseconds per tick of one fresh stack over ``ticks`` in the engine's batches, the
    stack, and its verdicts (what the rules are measured on)."""
    stack = DetectorStack(ceilings=ceilings)
    batches = [ticks[i:i + ENGINE_BATCH] for i in range(0, len(ticks), ENGINE_BATCH)]
    verdicts: list[dict] = []
    started = time.process_time()
    for batch in batches:
        verdicts += stack.process_batch(batch)
    return (time.process_time() - started) * 1e6 / len(ticks), stack, verdicts


def _rules_run(ticks: list[dict], verdicts: list[dict], ruleset: Any) -> float:
    """Microseconds per tick of a fresh ``RuleEngine`` of ``ruleset`` over the stack's verdicts."""
    engine = RuleEngine(ruleset)
    started = time.process_time()
    for i in range(0, len(ticks), ENGINE_BATCH):
        engine.on_batch(ticks[i:i + ENGINE_BATCH], verdicts[i:i + ENGINE_BATCH])
    return (time.process_time() - started) * 1e6 / len(ticks)


def _per_item(items: list[Any], step: Callable[[Any], object]) -> float:
    """Microseconds per item of ``step`` over ``items``, CODEC_ROUNDS times."""
    started = time.process_time()
    for _ in range(CODEC_ROUNDS):
        for item in items:
            step(item)
    return (time.process_time() - started) * 1e6 / (CODEC_ROUNDS * len(items))


def _history_writes(repeat: int, message: bytes) -> tuple[float, float]:
    """Client CPU microseconds per history entry: (one EVAL per batch, one XADD per entry)."""
    with tempfile.TemporaryDirectory() as data_dir:
        server = start_redis(data_dir, persist=False)
        client = redis.Redis.from_url(server.url)
        streams = [f"pw:{{p0}}:hist:bench/m{i % 36}" for i in range(ENGINE_BATCH)]  # 36 series
        batches = iter(range(1, 1_000_000))

        def ids() -> list[str]:
            ms = next(batches)
            return [f"{ms}-{i}" for i in range(ENGINE_BATCH)]

        def one_eval() -> None:
            pipe = client.pipeline(transaction=True)
            args: list = [1000]
            for entry_id in ids():
                args += (entry_id, message)
            pipe.execute_command("EVAL", HISTORY_XADD, len(streams), *streams, *args)
            pipe.execute()

        def xadd_each() -> None:
            pipe = client.pipeline(transaction=True)
            for stream, entry_id in zip(streams, ids()):
                pipe.xadd(stream, {"m": message}, id=entry_id, maxlen=1000, approximate=True)
            pipe.execute()

        def per_entry(write: Callable[[], None]) -> float:
            started = time.process_time()
            for _ in range(HISTORY_ROUNDS):
                write()
            return (time.process_time() - started) * 1e6 / (HISTORY_ROUNDS * ENGINE_BATCH)

        try:
            return _best(repeat, lambda: per_entry(one_eval)), _best(repeat, lambda: per_entry(xadd_each))
        finally:
            client.close()
            server.stop()


def engine_run(copies: int, ticks_count: int = ENGINE_TICKS) -> float:
    """Engine CPU microseconds per tick: every partition's ``Engine`` over a backlog of the
    national mix (``copies`` > 1: each market that many times over), read by read."""
    days, _ = load_pihps_days()
    ticks = tick_stream(national_mix(days), ticks_count, source="bench", copies=copies)
    with tempfile.TemporaryDirectory() as data_dir:
        server = start_redis(data_dir, persist=False)
        client = redis.Redis.from_url(server.url)
        try:
            partitions = keys.partitions(PARTITIONS)
            pipe = client.pipeline(transaction=False)
            for tick in ticks:
                pipe.xadd(partitions[keys.partition_of(tick["commodity"], PARTITIONS)].ticks,
                          {"t": orjson.dumps({**tick, "unit": "kg"})})
            pipe.execute()
            settings = Settings.from_env()
            catalog = load_catalog()
            leases = Leases(client, "bench:0:engine-cpu", partitions, 3600.0)
            held, _ = leases.balance(time.time())
            rulebook = Rulebook(settings.rules_dir, catalog, set(DETECTOR_NAMES))
            engines = [Engine(settings, client, catalog, rulebook, partition, leases) for partition in held]
            for engine in engines:
                engine.restore()
            started, done = time.process_time(), 0
            while done < len(ticks):
                for engine in engines:
                    entries = engine.read(pending=False)
                    done += len(entries)
                    if entries:
                        engine.process_entries(entries)
                    else:
                        engine.report_progress(time.time())
            for engine in engines:
                engine.report_progress(time.time())  # the last saves
            return (time.process_time() - started) * 1e6 / len(ticks)
        finally:
            client.close()
            server.stop()


def measure(ticks_count: int, repeat: int) -> dict:
    days, source = load_pihps_days()
    ticks = [{**t, "unit": "kg"} for t in tick_stream(days, ticks_count)]
    catalog = load_catalog()
    ceilings = ceilings_of(catalog)
    stack_us, stack, verdicts = float("inf"), None, []
    for _ in range(repeat):
        us, stack, verdicts = _stack_run(ticks, ceilings)
        stack_us = min(stack_us, us)
    assert stack is not None
    ruleset = Rulebook(Settings.from_env().rules_dir, catalog, set(DETECTOR_NAMES)).current
    states = [stack.series_state(key) for key in stack.series_keys()]
    blobs = [encode_state(state) for state in states]
    pickles = [pickle.dumps(state, pickle.HIGHEST_PROTOCOL) for state in states]
    assert all(type(decode_state(blob)) is type(state) for blob, state in zip(blobs, states))
    message = orjson.dumps({"type": "price", "id": "1-0", **ticks[-1], "verdict": stack.process_batch(ticks[-1:])[0]})
    history_eval, history_xadd = _history_writes(repeat, message)
    return {
        "data": source, "ticks": len(ticks), "series": series_count(ticks), "repeat": repeat,
        "stack_us_per_tick": stack_us,
        "rules_us_per_tick": _best(repeat, lambda: _rules_run(ticks, verdicts, ruleset)),
        "encode_us_per_series": _best(repeat, lambda: _per_item(states, encode_state)),
        "decode_us_per_series": _best(repeat, lambda: _per_item(blobs, decode_state)),
        "pickle_dumps_us_per_series": _best(repeat, lambda: _per_item(
            states, lambda state: pickle.dumps(state, pickle.HIGHEST_PROTOCOL))),
        "pickle_loads_us_per_series": _best(repeat, lambda: _per_item(pickles, pickle.loads)),
        "document_bytes": sum(map(len, blobs)) / len(blobs),
        "pickle_bytes": sum(map(len, pickles)) / len(pickles),
        "history_eval_us_per_entry": history_eval, "history_xadd_us_per_entry": history_xadd,
        "engine_us_per_tick": _best(repeat, lambda: engine_run(1)),
        "engine_wide_us_per_tick": _best(repeat, lambda: engine_run(8)),
    }


def run(quick: bool) -> dict:
    """For ``python -m bench``: the same figures as rows of the table."""
    m = measure(*(QUICK if quick else FULL))
    rows = [
        {"metric": f"engine cpu: stack, batches of {ENGINE_BATCH} (best of {m['repeat']})",
         "ours": round(m["stack_us_per_tick"], 2), "unit": "us/tick", "goal": "<= 75 us/tick engine"},
        {"metric": f"engine cpu: the shipped rules over the stack's verdicts (best of {m['repeat']})",
         "ours": round(m["rules_us_per_tick"], 2), "unit": "us/tick",
         "note": "RuleEngine.on_batch in batches of the engine's size"},
        {"metric": "engine cpu: encode_state one series (vs pickle.dumps)",
         "ours": round(m["encode_us_per_series"], 2), "baseline": round(m["pickle_dumps_us_per_series"], 2),
         "ratio": round(m["encode_us_per_series"] / m["pickle_dumps_us_per_series"], 2), "unit": "us/series"},
        {"metric": "engine cpu: decode_state one series (vs pickle.loads)",
         "ours": round(m["decode_us_per_series"], 2), "baseline": round(m["pickle_loads_us_per_series"], 2),
         "ratio": round(m["decode_us_per_series"] / m["pickle_loads_us_per_series"], 2), "unit": "us/series"},
        {"metric": "engine cpu: a history entry, one EVAL per batch (vs an XADD each)",
         "ours": round(m["history_eval_us_per_entry"], 2), "baseline": round(m["history_xadd_us_per_entry"], 2),
         "ratio": round(m["history_eval_us_per_entry"] / m["history_xadd_us_per_entry"], 2), "unit": "us/tick",
         "note": "the client's CPU for a batch's history entries in one transaction"},
        {"metric": f"engine cpu: the engine in process, a backlog, 414 series (best of {m['repeat']})",
         "ours": round(m["engine_us_per_tick"], 1), "unit": "us/tick", "goal": "<= 75 us/tick",
         "note": "Engine.process_entries against a real Redis, 8 partitions, 8,000 ticks; Redis's CPU not counted"},
        {"metric": "engine cpu: the engine in process, a backlog, 3,312 series",
         "ours": round(m["engine_wide_us_per_tick"], 1), "unit": "us/tick"},
    ]
    return {"name": "engine_cpu", "rows": rows, "details": m}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.engine_cpu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK[0]:,} ticks, best of {QUICK[1]}")
    parser.add_argument("--ticks", type=int, help="ticks per run")
    parser.add_argument("--repeat", type=int, help="runs; the best is reported")
    parser.add_argument("--engine", action="store_true", help="only the engine in process (narrow and wide)")
    args = parser.parse_args(argv)
    if args.engine:
        repeat = args.repeat or QUICK[1]
        for copies, name in ((1, "414 series"), (8, "3,312 series")):
            print(f"engine in process, backlog, {name}: "
                  f"{_best(repeat, lambda: engine_run(copies, args.ticks or ENGINE_TICKS)):.1f} us/tick "
                  f"(best of {repeat})")
        return
    ticks, repeat = QUICK if args.quick else FULL
    m = measure(args.ticks or ticks, args.repeat or repeat)
    print(f"data {m['data']}: {m['ticks']:,} ticks, {m['series']} series, best of {m['repeat']}")
    print(f"stack (process_batch of {ENGINE_BATCH})   {m['stack_us_per_tick']:8.1f} us/tick")
    print(f"rules (RuleEngine.on_batch)       {m['rules_us_per_tick']:8.1f} us/tick")
    print(f"encode_state                      {m['encode_us_per_series']:8.1f} us/series"
          f"   pickle.dumps {m['pickle_dumps_us_per_series']:6.1f} us/series")
    print(f"decode_state                      {m['decode_us_per_series']:8.1f} us/series"
          f"   pickle.loads {m['pickle_loads_us_per_series']:6.1f} us/series")
    print(f"document size                     {m['document_bytes']:8.0f} bytes"
          f"      pickle       {m['pickle_bytes']:6.0f} bytes")
    print(f"history entry, one EVAL           {m['history_eval_us_per_entry']:8.1f} us/tick"
          f"     an XADD each {m['history_xadd_us_per_entry']:6.1f} us/tick")
    print(f"engine in process, backlog        {m['engine_us_per_tick']:8.1f} us/tick (414 series), "
          f"{m['engine_wide_us_per_tick']:.1f} (3,312 series)")


if __name__ == "__main__":
    main()
