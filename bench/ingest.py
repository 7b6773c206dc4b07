"""Ingest throughput, end to end: ticks per second accepted by the web process AND committed by
the engine (scored by the full default stack, rules evaluated, checkpointed, published).

A few concurrent device connections send real PIHPS ticks in batches (``POST /api/v1/ticks``,
or one ``/ws/ingest`` message per batch, each waiting for its ack). The clock starts before
the first send and stops when the engine's committed count (``pw:stats:processed``) reaches
the number sent; "accepted" stops when the last batch was acknowledged by the web process.
Every tick carries a device id and sequence number, so the duplicate check runs too.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import orjson
import redis
from websockets.asyncio.client import connect as ws_connect

from bench import procs
from bench.data import load_pihps_days, series_count, tick_stream
from stores import partitioned
from testkit.waiting import wait_for

BATCH = 500
CLIENTS = 4  # concurrent HTTP connections
DEVICES = 50  # device tokens the batches are spread over; each /ws/ingest connection is one
QUICK_TICKS = 30_000
FULL_TICKS = 200_000
TIMEOUT = 300.0  # seconds for one transport, sending and draining together


async def _send_http(base_url: str, bodies: list[bytes], tokens: list[str]) -> None:
    work: Iterator[tuple[int, bytes]] = iter(enumerate(bodies))
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        async def device() -> None:
            for n, body in work:
                headers = {"content-type": "application/json", "authorization": f"Bearer {tokens[n % len(tokens)]}"}
                response = await client.post("/api/v1/ticks", content=body, headers=headers)
                if response.status_code != 202:
                    raise RuntimeError(f"POST refused: {response.status_code} {response.text[:300]}")

        await asyncio.gather(*(device() for _ in range(CLIENTS)))


async def _send_ws(ws_url: str, bodies: list[bytes], tokens: list[str]) -> None:
    work = iter(enumerate(bodies))

    async def device(token: str) -> None:
        async with ws_connect(f"{ws_url}/ws/ingest", compression=None, max_size=1 << 24,
                              additional_headers={"authorization": f"Bearer {token}"}) as websocket:
            for ref, body in work:
                await websocket.send(b'{"ref":%d,"ticks":%s}' % (ref, body), text=True)
                ack = orjson.loads(await websocket.recv())
                if ack.get("status") != 202 or ack.get("ref") != ref:
                    raise RuntimeError(f"/ws/ingest refused: {str(ack)[:300]}")

    await asyncio.gather(*(device(token) for token in tokens))


def _measure(transport: str, ticks: list[dict]) -> dict:
    bodies = [orjson.dumps(ticks[i:i + BATCH]) for i in range(0, len(ticks), BATCH)]
    with procs.stack(f"ingest-{transport}") as system:
        engine = system.start("engine")
        web = system.start("web")
        base_url = f"http://127.0.0.1:{system.port}"
        system.wait_ready()
        store = redis.Redis.from_url(system.redis_url)
        tokens = system.device_tokens(DEVICES)
        redis_pid = system.redis_process.process.pid
        web_cpu, engine_cpu, redis_cpu = (procs.cpu_seconds(pid) for pid in (web.pid, engine.pid, redis_pid))
        start = time.perf_counter()
        if transport == "http":
            asyncio.run(asyncio.wait_for(_send_http(base_url, bodies, tokens), TIMEOUT))
        else:
            asyncio.run(asyncio.wait_for(_send_ws(f"ws://127.0.0.1:{system.port}", bodies, tokens), TIMEOUT))
        accepted = time.perf_counter() - start
        web_cpu = procs.cpu_seconds(web.pid) - web_cpu

        def drained() -> bool:
            engine.check_alive()
            return partitioned.total(store, "processed") >= len(ticks)

        wait_for(drained, TIMEOUT, f"the engine to commit {len(ticks)} ticks")
        end_to_end = time.perf_counter() - start
        engine_cpu = procs.cpu_seconds(engine.pid) - engine_cpu
        redis_cpu = procs.cpu_seconds(redis_pid) - redis_cpu
        store.close()
    return {"accepted_s": accepted, "end_to_end_s": end_to_end, "web_cpu": web_cpu / accepted,
            "engine_cpu": engine_cpu / end_to_end, "redis_cpu": redis_cpu / end_to_end,
            "engine_ticks_per_cpu_s": len(ticks) / max(engine_cpu, 1e-9)}


def run(quick: bool) -> dict:
    days, source = load_pihps_days()
    count = QUICK_TICKS if quick else FULL_TICKS
    rows, details = [], {"data": source, "ticks": count, "batch": BATCH, "http_connections": CLIENTS,
                         "devices": DEVICES,
                         "web_cpus": sorted(procs.WEB_CPUS), "other_cpus": sorted(procs.LOAD_CPUS)}
    for transport, label in (("http", "HTTP POST"), ("ws", "/ws/ingest")):
        ticks = tick_stream(days, count, source=f"bench-{transport}")
        details["series"] = series_count(ticks)
        figures = _measure(transport, ticks)
        details[transport] = figures
        rows.append({"metric": f"ingest {label}: end to end (engine committed)",
                     "ours": round(count / figures["end_to_end_s"]), "unit": "ticks/s",
                     "goal": ">= 20,000", "note": f"engine CPU {figures['engine_cpu']:.0%}"})
        rows.append({"metric": f"ingest {label}: engine ticks per engine CPU-second",
                     "ours": round(figures["engine_ticks_per_cpu_s"]), "unit": "ticks/CPU-s",
                     "note": "what the engine would do with a core to itself"})
        rows.append({"metric": f"ingest {label}: accepted by web",
                     "ours": round(count / figures["accepted_s"]), "unit": "ticks/s",
                     "note": f"web CPU {figures['web_cpu']:.0%} of one core"})
    return {"name": "ingest", "rows": rows, "details": details}
