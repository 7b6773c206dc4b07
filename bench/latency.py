"""Tick-to-screen latency: from a device's POST to a subscribed /ws/prices client's screen.

The whole system runs (Redis, engine, web). A device replays real PIHPS ticks at a steady
rate; a client subscribed to everything records when each price message arrives. Every tick
is matched by its id (the POST's answer lists them), so the latency is measured for every
tick, not a sample: time from the start of its POST to the frame holding its price. Now and
then the device sends a spike instead of a market's real price (the real one times six): the
detectors quarantine it and the rule ``harga-menyimpang`` fires; that alert's arrival is the
spike's latency. Both at a light load (one tick per POST) and at a heavy one (batches).
A price conflated away by the server (a newer price of the same series sent in its place)
has no arrival and is counted as such, not as a latency.
"""
from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import redis

from bench import procs
from bench.data import load_pihps_days, tick_stream
from bench.stats import Histogram
from bench.wsclient import connect
from stores import partitioned
from testkit.waiting import wait_for

# (name, ticks per POST, POSTs per second)
LOADS = (("light", 1, 20), ("heavy", 50, 20))
# Each day's prices come from this many copies of the 18 markets: 360 series, so that at the
# heavy load a series gets about three ticks a second (the real panel's 36 series would get 28 each,
# and the server would rightly conflate most of them away before the screen).
COPIES = 10
WARM_DAYS = 40
SPIKES = 5
SPIKE_FACTOR = 6.0
SPIKE_RULE = "harga-menyimpang"
ARRIVAL_TIMEOUT = 15.0


class Screen:
    """What the subscribed client saw: arrival time of each price id, and the alerts."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.alerts: list[tuple[float, dict]] = []

    def on_message(self, payload: bytes) -> None:
        now = time.time()
        data = orjson.loads(payload)
        for message in data if isinstance(data, list) else [data]:
            kind = message.get("type")
            if kind == "price":
                self.arrived.setdefault(message["id"], now)
            elif kind == "alert":
                self.alerts.append((now, message))

    def alert_for(self, tick: dict) -> float | None:
        for at, alert in self.alerts:
            if (alert.get("rule") == SPIKE_RULE and alert.get("state") == "firing"
                    and alert.get("market") == tick["market"] and alert.get("ts") == tick["ts"]):
                return at
        return None


class Device:
    def __init__(self, client: httpx.AsyncClient, token: str):
        self.client = client
        self.headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
        self.sent: dict[str, float] = {}

    async def post(self, ticks: list[dict]) -> float:
        started = time.time()
        response = await self.client.post("/api/v1/ticks", content=orjson.dumps(ticks), headers=self.headers)
        if response.status_code != 202:
            raise RuntimeError(f"POST refused: {response.status_code} {response.text[:300]}")
        for tick_id in response.json()["ids"]:
            self.sent[tick_id] = started
        return started


async def _phase(system: procs.Stack, device: Device, screen: Screen, ticks: list[dict], per_post: int,
                 posts_per_s: float, seconds: float) -> dict:
    device.sent.clear()
    total = int(per_post * posts_per_s * seconds)
    todo, rest = ticks[:total], ticks[total:]
    spike_every = max(1, total // (SPIKES + 1))
    spikes: list[tuple[float, dict]] = []
    start = time.perf_counter()
    for n, at in enumerate(range(0, total, per_post)):
        batch = todo[at:at + per_post]
        spike_at = next((i for i in range(at, at + len(batch)) if i and i % spike_every == 0), None)
        if spike_at is not None and len(spikes) < SPIKES:
            spike = {**todo[spike_at], "price": todo[spike_at]["price"] * SPIKE_FACTOR}
            batch = [t for i, t in enumerate(batch, at) if i != spike_at]
            spikes.append((await device.post([spike]), spike))
        if batch:
            await device.post(batch)
        await asyncio.sleep(max(0.0, start + (n + 1) / posts_per_s - time.perf_counter()))  # paced load
    elapsed = time.perf_counter() - start
    deadline = time.monotonic() + ARRIVAL_TIMEOUT
    while time.monotonic() < deadline and not (
            all(i in screen.arrived for i in device.sent) and all(screen.alert_for(s) for _, s in spikes)):
        for server in system.servers.values():
            server.check_alive()
        await asyncio.sleep(0.02)
    prices, alerts = Histogram(), Histogram()
    for tick_id, started in device.sent.items():
        if tick_id in screen.arrived:
            prices.add(screen.arrived[tick_id] - started)
    for started, spike in spikes:
        arrived = screen.alert_for(spike)
        if arrived is not None:
            alerts.add(arrived - started)
    ticks[:] = rest
    return {"ticks_per_s": round(len(device.sent) / elapsed), "price": prices.summary_ms(),
            "not_arrived": len(device.sent) - prices.count, "alert": alerts.summary_ms(),
            "spikes": len(spikes), "alerts_missed": len(spikes) - alerts.count}


async def _run(system: procs.Stack, ticks: list[dict], warm: int, seconds: float) -> dict:
    base_url = f"http://127.0.0.1:{system.port}"
    screen = Screen()
    results = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        device = Device(client, system.device_tokens(1)[0])
        for at in range(0, warm, 500):
            await device.post(ticks[at:min(at + 500, warm)])
        del ticks[:warm]
        processed = redis.Redis.from_url(system.redis_url)
        wait_for(lambda: partitioned.total(processed, "processed") >= warm, 120,
                 "the engine to process the warm-up ticks")  # the phases start from a drained queue
        processed.close()
        subscriber = await connect("127.0.0.1", system.port, "/ws/prices", screen.on_message)
        subscriber.send_text('{"type": "subscribe"}')
        try:
            for name, per_post, posts_per_s in LOADS:
                results[name] = await _phase(system, device, screen, ticks, per_post, posts_per_s, seconds)
        finally:
            await subscriber.close()
    return results


def run(quick: bool) -> dict:
    days, source = load_pihps_days()
    seconds = 5.0 if quick else 15.0
    warm = COPIES * sum(len(rows) for _, rows in days[:WARM_DAYS])
    needed = warm + sum(int(p * r * seconds) for _, p, r in LOADS)
    ticks = tick_stream(days, needed, source="bench-latency", copies=COPIES)
    with procs.stack("latency") as system:
        system.start("engine")
        system.start("web")
        system.wait_ready()
        results = asyncio.run(asyncio.wait_for(_run(system, ticks, warm, seconds), 300))
    rows = []
    for name, per_post, _posts_per_s in LOADS:
        r = results[name]
        load = f"{name} load ({r['ticks_per_s']:,} ticks/s, {per_post} per POST)"
        rows.append({"metric": f"tick-to-screen, {load}", "ours": r["price"]["p50_ms"], "unit": "ms (p50)",
                     "p99": r["price"]["p99_ms"], "max": r["price"]["max_ms"],
                     "note": f"{r['price']['count']:,} ticks; {r['not_arrived']} conflated or lost"})
        rows.append({"metric": f"spike-to-alert, {load}", "ours": r["alert"]["p50_ms"], "unit": "ms (p50)",
                     "p99": r["alert"]["p99_ms"], "max": r["alert"]["max_ms"],
                     "note": f"{r['spikes'] - r['alerts_missed']} of {r['spikes']} spikes alerted"})
    return {"name": "latency", "rows": rows, "details": {"data": source, "phase_seconds": seconds, **results}}
