"""Scale-out of the engine: ingest end to end with 1 and then 2 engine processes sharing the
partitions (``PASARWATCH_PARTITIONS=8``), the engine CPU each tick costs, and what an added
core would add.

Ticks are routed to partitions by commodity, and the PIHPS export has two commodities
(shallots and bird's-eye chilli) that both land in partition 3 of 8: sent as they are, one
engine would do all the work however many run. So the stream here is the national mix: the
real PIHPS rows of each day, reported once for every commodity of the catalog (23), each
catalog commodity taking in turn the shallot or the chilli series of the same 18 markets, its
prices scaled by the ratio of the two commodities' ceilings (HET/HAP, West Java) so that a
price sits as far above or below its ceiling as the real one did (a commodity without a
ceiling keeps the real rupiah). Series are real day-to-day movements; only their names and
level are borrowed. That spreads the ticks over the catalog's commodities as a national feed
would, and each partition gets the share of the catalog's commodities CRC-32 gives it.
That stream (414 series) is sent to 1 engine and to 2; then a wide one, every market 8 times
over (3,312 series), to 2 engines: there almost every tick of a batch is of a different series,
as in a national feed, so nearly every tick costs a series checkpoint.

Each configuration gets a fresh Redis (AOF, ``appendfsync always``, as ``pasarwatch up``), the
web process and the engines, all free to use every core (not pinned as in the other
benchmarks: a second engine needs the second core). Both engines are started, and the
benchmark waits until the partitions' leases show two owners, before the first tick is sent.
The clock starts at the first POST and stops when the partitions' ``processed`` counters sum
to the number sent. CPU times are read from /proc for each engine, the web process and Redis.
"""
from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import redis

from base import keys
from base.catalog import load_catalog
from bench import procs
from bench.data import Day, load_pihps_days, series_count, tick_stream
from bench.ingest import BATCH, CLIENTS, DEVICES, _send_http
from server.engine import SAVE_EVERY
from stores import partitioned
from testkit.waiting import wait_for

PARTITIONS = 8
PROVINCE = "32"  # West Java: the data's province, whose ceilings scale the borrowed series
QUICK_TICKS = 8_000
FULL_TICKS = 60_000
WIDE_COPIES = 8  # the wide stream: each market 8 times over, 3,312 series
TIMEOUT = 400.0  # seconds for one configuration, sending and draining together
ALL_CPUS = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set()


def national_mix(days: list[Day]) -> list[Day]:
    """Each day's real rows reported for every catalog commodity (see the module's doc)."""
    catalog = load_catalog()
    real = sorted({row["commodity"] for _, rows in days for row in rows})
    targets = sorted(catalog.commodities)
    scales = {}
    for index, target in enumerate(targets):
        source = real[index % len(real)]
        ceiling, real_ceiling = (catalog.commodities[name].ceiling_for(PROVINCE) for name in (target, source))
        scales[target] = (source, ceiling / real_ceiling if ceiling and real_ceiling else 1.0)
    mixed = []
    for day, rows in days:
        by_commodity: dict[str, list[dict]] = {}
        for row in rows:
            by_commodity.setdefault(row["commodity"], []).append(row)
        mixed.append((day, [{**row, "commodity": target, "price": round(row["price"] * scale)}
                            for target, (source, scale) in scales.items() for row in by_commodity.get(source, [])]))
    return mixed


def _waited_s(pid: int) -> float:
    """Seconds a process has spent runnable but waiting for a core (/proc/PID/schedstat): on a
    shared machine, how much of the wall time other work took from it."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def _owners(store: redis.Redis) -> list[str | None]:
    raw = store.mget([partition.lease for partition in keys.partitions(PARTITIONS)])
    return [owner.decode() if isinstance(owner, bytes) else owner for owner in raw]


def _pid_of(owner: str | None) -> int | None:
    """The process id in an engine id (``host:pid:suffix``, server/leases.py)."""
    try:
        return int(owner.split(":")[-2]) if owner else None
    except (IndexError, ValueError):
        return None


def _memory(store: redis.Redis) -> dict:
    """Bytes Redis holds per series and per stored tick, from MEMORY USAGE of the partitions' keys."""
    per_series_hashes = ("state_series", "state_series_info", "latest", "latest_ts", "health")
    series = hashes = ticks_bytes = ticks_len = 0
    for partition in keys.partitions(PARTITIONS):
        series += store.hlen(partition.state_series)
        for name in per_series_hashes:
            hashes += store.memory_usage(getattr(partition, name), samples=0) or 0
        ticks_bytes += store.memory_usage(partition.ticks, samples=0) or 0
        ticks_len += store.xlen(partition.ticks)
    history_bytes = history_len = history_keys = 0
    for key in store.scan_iter(match="pw:{p*}:hist:*", count=1000):
        history_bytes += store.memory_usage(key, samples=0) or 0
        history_len += store.xlen(key)
        history_keys += 1
    used = int(store.info("memory")["used_memory"])
    return {"series": series, "per_series_hash_bytes": hashes / max(series, 1),
            "history_entry_bytes": history_bytes / max(history_len, 1), "history_keys": history_keys,
            "history_entries": history_len, "tick_entry_bytes": ticks_bytes / max(ticks_len, 1),
            "ticks_kept": ticks_len, "used_memory": used}


def _measure(name: str, engines: int, ticks: list[dict]) -> dict:
    bodies = [orjson.dumps(ticks[i:i + BATCH]) for i in range(0, len(ticks), BATCH)]
    with procs.stack(f"engines-{name}") as system:
        env = system.env(PASARWATCH_PARTITIONS=str(PARTITIONS))
        started = [system.start_command(f"engine-{n + 1}", [sys.executable, "-m", "server.cli", "engine"], env,
                                        ALL_CPUS) for n in range(engines)]
        web = system.start_command("web", [sys.executable, "-m", "server.cli", "web"], env, ALL_CPUS)
        system.wait_port(web, system.port)
        system.wait_ready()
        store = redis.Redis.from_url(system.redis_url)

        def split() -> bool:
            for engine in started:
                engine.check_alive()
            owners = _owners(store)
            counts = Counter(owners)
            # Every partition owned, by as many engines as run, none holding more than its fair share.
            return None not in counts and len(counts) == engines and \
                max(counts.values()) <= -(-PARTITIONS // engines)

        wait_for(split, 60, f"{engines} engines to share the {PARTITIONS} partitions")
        owners = _owners(store)
        tokens = system.device_tokens(DEVICES)
        redis_pid = system.redis_process.process.pid
        pids = [engine.pid for engine in started]
        before = {pid: procs.cpu_seconds(pid) for pid in (*pids, web.pid, redis_pid)}
        waited = {pid: _waited_s(pid) for pid in pids}
        start = time.perf_counter()
        asyncio.run(asyncio.wait_for(_send_http(f"http://127.0.0.1:{system.port}", bodies, tokens), TIMEOUT))
        accepted = time.perf_counter() - start

        def drained() -> bool:
            for engine in started:
                engine.check_alive()
            return partitioned.total(store, "processed") >= len(ticks)

        wait_for(drained, TIMEOUT, f"{engines} engine(s) to commit {len(ticks)} ticks")
        end_to_end = time.perf_counter() - start
        cpu = {pid: procs.cpu_seconds(pid) - seconds for pid, seconds in before.items()}
        waited = {pid: _waited_s(pid) - seconds for pid, seconds in waited.items()}
        processed = [int(store.get(partition.processed) or 0) for partition in keys.partitions(PARTITIONS)]
        moved = _owners(store) != owners
        memory = _memory(store)
        store.close()
    by_engine = {pid: sum(count for count, owner in zip(processed, owners) if _pid_of(owner) == pid)
                 for pid in pids}
    engine_cpu = sum(cpu[pid] for pid in pids)
    return {"engines": engines, "accepted_s": accepted, "end_to_end_s": end_to_end,
            "ticks_per_s": len(ticks) / end_to_end,
            "engine_cpu_s": engine_cpu, "engine_us_per_tick": engine_cpu / len(ticks) * 1e6,
            "engine_cpu_share": [cpu[pid] / end_to_end for pid in pids],
            "engine_waited_share": [waited[pid] / end_to_end for pid in pids],
            "ticks_by_engine": list(by_engine.values()),
            "web_us_per_tick": cpu[web.pid] / len(ticks) * 1e6,
            "redis_us_per_tick": cpu[redis_pid] / len(ticks) * 1e6,
            "redis_cpu_share": cpu[redis_pid] / end_to_end,
            "processed_by_partition": processed, "leases_moved_during_run": moved, "memory": memory}


def checkpoints_per_tick(ticks: list[dict]) -> float:
    """Series checkpointed per tick when each partition's engine takes its backlog in batches of
    ``BATCH`` (the engine's default) and saves its state every ``SAVE_EVERY`` batches: every save
    writes the state of each series touched since the last one once."""
    by_partition: dict[int, list[tuple[str, str]]] = {}
    for tick in ticks:
        by_partition.setdefault(keys.partition_of(tick["commodity"], PARTITIONS), []).append(
            (tick["commodity"], tick["market"]))
    span = BATCH * SAVE_EVERY
    touched = sum(len(set(series[i:i + span])) for series in by_partition.values()
                  for i in range(0, len(series), span))
    return touched / max(len(ticks), 1)


def run(quick: bool) -> dict:
    days, source = load_pihps_days()
    count = QUICK_TICKS if quick else FULL_TICKS
    real_commodities = sorted({row["commodity"] for _, rows in days for row in rows})
    mix = national_mix(days)
    ticks = tick_stream(mix, count, source="bench-http")
    wide_ticks = tick_stream(mix, count, source="bench-http", copies=WIDE_COPIES)
    by_partition = Counter(keys.partition_of(tick["commodity"], PARTITIONS) for tick in ticks)
    details: dict = {
        "data": source, "ticks": count, "batch": BATCH, "http_connections": CLIENTS, "devices": DEVICES,
        "partitions": PARTITIONS, "series": series_count(ticks), "wide_series": series_count(wide_ticks),
        "checkpoints_per_tick": checkpoints_per_tick(ticks),
        "wide_checkpoints_per_tick": checkpoints_per_tick(wide_ticks),
        "commodities": len({tick["commodity"] for tick in ticks}),
        "real_commodities": {name: keys.partition_of(name, PARTITIONS) for name in real_commodities},
        "ticks_by_partition": [by_partition.get(n, 0) for n in range(PARTITIONS)],
        "cpus": sorted(ALL_CPUS), "pinned": False,
    }
    if procs.PINNED:
        os.sched_setaffinity(0, ALL_CPUS)  # the load generator may use either core, as the servers do
    try:
        one, two, wide = _measure("one", 1, ticks), _measure("two", 2, ticks), _measure("wide", 2, wide_ticks)
    finally:
        procs.pin_self_to_load_cpus()
    details["one"], details["two"], details["wide"] = one, two, wide
    ideal = count / max(two["ticks_by_engine"])  # the speed-up this split of the work allows at most
    real = ", ".join(f"{name} -> {number}" for name, number in details["real_commodities"].items())
    split = "/".join(f"{n:,}" for n in two["ticks_by_engine"])

    def shares(figures: dict) -> str:
        return (", ".join(f"{share:.0%}" for share in figures["engine_cpu_share"]) + " (waited for a core "
                + ", ".join(f"{share:.0%}" for share in figures["engine_waited_share"]) + ")")

    assumption = "an added engine on a core of its own, partitions evenly loaded, Redis and web not the limit"
    rows = [
        {"metric": "engines: ingest end to end, 1 engine (HTTP, 8 partitions)", "ours": round(one["ticks_per_s"]),
         "unit": "ticks/s",
         "note": f"{details['commodities']} commodities, {details['series']} series; engine CPU {shares(one)}, "
                 f"Redis {one['redis_cpu_share']:.0%}"},
        {"metric": "engines: ingest end to end, 2 engines", "ours": round(two["ticks_per_s"]),
         "baseline": round(one["ticks_per_s"]), "ratio": round(two["ticks_per_s"] / one["ticks_per_s"], 2),
         "unit": "ticks/s",
         "note": f"baseline: 1 engine, same run; ticks per engine {split} (at most {ideal:.2f}x); engine CPU "
                 f"{shares(two)}, Redis {two['redis_cpu_share']:.0%}; 2 cores for everything"},
        {"metric": "engines: engine CPU per tick, 1 engine", "ours": round(one["engine_us_per_tick"], 1),
         "unit": "us/tick",
         "note": f"{details['checkpoints_per_tick']:.2f} series checkpointed per tick when behind (a backlog in "
                 f"batches of {BATCH}, saved every {SAVE_EVERY}th; an engine that keeps up saves every batch)"},
        {"metric": "engines: engine CPU per tick, 2 engines (summed)", "ours": round(two["engine_us_per_tick"], 1),
         "unit": "us/tick"},
        {"metric": "engines: projected ticks/s per added core", "ours": round(1e6 / two["engine_us_per_tick"]),
         "unit": "ticks/s/core", "note": f"1e6 / engine CPU us per tick (2 engines): {assumption}"},
        {"metric": f"engines: wide, {details['wide_series']:,} series, 2 engines: end to end",
         "ours": round(wide["ticks_per_s"]), "unit": "ticks/s",
         "note": f"each market {WIDE_COPIES} times over; engine CPU {shares(wide)}"},
        {"metric": "engines: wide: engine CPU per tick (summed)", "ours": round(wide["engine_us_per_tick"], 1),
         "unit": "us/tick",
         "note": f"{details['wide_checkpoints_per_tick']:.2f} series checkpointed per tick when behind, as when "
                 "nearly every tick of a batch is a different series (a national feed)"},
        {"metric": "engines: wide: projected ticks/s per added core", "ours": round(1e6 / wide["engine_us_per_tick"]),
         "unit": "ticks/s/core", "note": f"1e6 / engine CPU us per tick (wide): {assumption}"},
        {"metric": "engines: Redis CPU per tick (ingest + engine), wide", "ours": round(wide["redis_us_per_tick"], 1),
         "unit": "us/tick",
         "note": f"narrow: 1 engine {one['redis_us_per_tick']:.1f}, 2 engines {two['redis_us_per_tick']:.1f}"},
        {"metric": "engines: Redis memory per series (5 hashes' fields), wide",
         "ours": round(wide["memory"]["per_series_hash_bytes"]), "unit": "bytes/series",
         "note": f"+ {wide['memory']['history_entry_bytes']:.0f} bytes per history entry, "
                 f"{wide['memory']['tick_entry_bytes']:.0f} per tick kept in the stream"},
        {"metric": "engines: the real PIHPS commodities' partitions (of 8)",
         "ours": ", ".join(str(number) for number in details["real_commodities"].values()),
         "note": f"{real}: unmixed, one engine would do all the work"},
    ]
    return {"name": "engines", "rows": rows, "details": details}
