"""Import speed: price history loaded from files (``pasarwatch import``) through the ingest path
and the engine, until the engine has committed every imported tick (scored by the full default
stack, rules evaluated, checkpointed), in ticks per second.

The full run imports the West Java panel from ../shared/data/pihps-jabar (2019-2025, two
commodities, 18 markets); the quick run one of its files, or the demo slice when the shared data
is not there. The goal is the engine's live rate: an import must not be slower than live ticks.
"""
from __future__ import annotations

import subprocess
import sys
import time

import orjson
import redis

from bench import procs
from bench.data import pihps_source
from stores import partitioned
from server.demo import DEMO_DIR
from server.demo_data.make_demo_slice import SOURCE_FILES
from testkit.waiting import wait_for

TIMEOUT = 600.0


def run(quick: bool) -> dict:
    source = pihps_source()
    files = [source / name for name in SOURCE_FILES] if source else sorted(DEMO_DIR.glob("*.csv"))
    if quick:
        files = files[:1]
    with procs.stack("imports") as system:
        engine = system.start("engine")
        system.start("web")  # it makes the audit key the import signs with
        system.wait_ready()
        store = redis.Redis.from_url(system.redis_url)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "server.imports", *map(str, files), "--json"],
                              env=system.env(), capture_output=True, text=True, timeout=TIMEOUT)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"import failed ({done.returncode}): {done.stderr[-2000:]}")
        report = orjson.loads(done.stdout)
        appended = time.perf_counter() - start

        def drained() -> bool:
            engine.check_alive()
            return partitioned.total(store, "processed") >= report["accepted"]

        wait_for(drained, TIMEOUT, f"the engine to commit {report['accepted']} imported ticks")
        end_to_end = time.perf_counter() - start
        store.close()
    accepted = report["accepted"]
    return {"name": "imports", "rows": [
        {"metric": "import from files: end to end (engine committed)", "ours": round(accepted / end_to_end),
         "unit": "ticks/s", "goal": ">= 4,800 (live)",
         "note": f"{accepted:,} ticks from {len(files)} file(s) in {end_to_end:.1f} s"},
        {"metric": "import from files: appended", "ours": round(accepted / appended), "unit": "ticks/s",
         "note": "read, validated and appended; the import waits when the engine falls 20,000 behind"},
    ], "details": {"files": [str(f) for f in files], "report": {k: report[k] for k in ("rows", "accepted")
                                                                  if k in report}}}
