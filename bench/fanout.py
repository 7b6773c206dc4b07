"""Fan-out: price messages delivered per second from ONE web process to N WebSocket clients.

Ours (``pasarwatch web``) and the baseline (a Starlette app with encode/broadcaster, see
baseline_app.py) are measured in the same run, one after the other, on the same core, against
the same Redis and the same feed: price messages PUBLISHed to ``pw:events`` exactly as the
engine publishes them. The clients run in separate processes on the other core(s).

For each server and N: connect N clients and subscribe; publish until every client has a
price; then memory per idle connection (RSS growth of the server / N); then a steady phase at
10,000 deliveries/s (the goal's load: p50/p99 latency from PUBLISH to the client), then a
saturation phase offered far more than either server can deliver (deliveries/s received by
the clients, and per CPU-second of the server, which stays fair should the clients, not the
server, run out of CPU). Messages go to many series, so our per-series conflation drops a
price only when a client is seconds behind; a dropped price is not counted as delivered.
"""
from __future__ import annotations

import multiprocessing
import time

import orjson
import redis

from bench import baseline, procs
from bench.fanout_clients import client_main
from bench.stats import Histogram
from base import keys
from testkit.waiting import wait_for

CLIENT_PROCESSES = 4
SERIES = 1000
STEADY_DELIVERIES = 10_000
SATURATING_DELIVERIES = 1_000_000
PROBES_PER_SECOND = 200
SLOT = 0.005  # seconds between publishing rounds
PRIME_EVERY = 0.1  # seconds between prices while waiting for every client to get one
SUBSCRIBE = '{"type": "subscribe"}'
VERDICT = {"scores": {"zscore": 0.4, "iqr": 0.1, "forecast": 0.6, "crossmarket": 0.9, "ceiling": 0.7},
           "fired": [], "reasons": {}, "quarantined": False,
           "expected": {"level": 60000.0, "lo": 52000.0, "hi": 68000.0}}


def price_message(n: int, probe: bool) -> bytes:
    """A price message as the engine publishes it; a probe's id carries its publish time."""
    now = time.time()
    return orjson.dumps({
        "type": "price", "id": f"p{now:.6f}" if probe else f"{int(now * 1000)}-{n}",
        "commodity": "cabai-rawit-merah", "market": f"bench-{n % SERIES:04d}", "province": "32",
        "price": 60000.0 + n % 500, "ts": now, "unit": "kg", "source": "bench", "verdict": VERDICT,
    })


class Publisher:
    def __init__(self, url: str):
        self.redis = redis.Redis.from_url(url)
        self.sent = 0

    def publish(self, count: int, probe_every: int) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for _ in range(count):
            pipe.publish(keys.EVENTS, price_message(self.sent, self.sent % probe_every == 0))
            self.sent += 1
        pipe.execute()

    def run(self, rate: float, seconds: float) -> None:
        """``rate`` messages a second for ``seconds``, in rounds every SLOT (a paced load)."""
        probe_every = max(1, round(rate / PROBES_PER_SECOND))
        start, first = time.perf_counter(), self.sent
        while (elapsed := time.perf_counter() - start) < seconds:
            due = int(rate * elapsed) + 1 - (self.sent - first)
            if due > 0:
                self.publish(due, probe_every)
            time.sleep(SLOT)


class Clients:
    """N connections spread over CLIENT_PROCESSES processes."""

    def __init__(self, port: int, total: int):
        context = multiprocessing.get_context("spawn")
        self.pipes, self.processes = [], []
        first = 0
        for i in range(CLIENT_PROCESSES):
            count = total // CLIENT_PROCESSES + (1 if i < total % CLIENT_PROCESSES else 0)
            mine, theirs = context.Pipe()
            process = context.Process(target=client_main, daemon=True,
                                      args=(theirs, "127.0.0.1", port, "/ws/prices", first, count, SUBSCRIBE))
            first += count
            process.start()
            self.pipes.append(mine)
            self.processes.append(process)
        self.opened = [self._receive(pipe, 180) for pipe in self.pipes]
        self.connected = sum(o["connected"] for o in self.opened)

    @staticmethod
    def _receive(pipe, timeout: float):
        if not pipe.poll(timeout):
            raise TimeoutError(f"a client process did not answer within {timeout}s")
        return pipe.recv()

    def cpu_seconds(self) -> float:
        return sum(procs.cpu_seconds(process.pid) for process in self.processes)

    def ask(self, *command, timeout: float = 60) -> list:
        for pipe in self.pipes:
            pipe.send(command)
        return [self._receive(pipe, timeout) for pipe in self.pipes]

    def close(self) -> None:
        try:
            self.ask("close", timeout=60)
        finally:
            for process in self.processes:
                process.join(timeout=10)
                if process.is_alive():
                    process.kill()


def _settle(server: procs.Server, clients: Clients, quiet: float = 0.5, timeout: float = 60.0) -> float | None:
    """Wait until the clients receive nothing for ``quiet`` seconds: the server's backlog is out.

    A phase must not count what an earlier one left queued. Returns how long that took, or
    None when the server was still sending after ``timeout`` (the next phase goes on anyway).
    """
    start = time.monotonic()
    last, since = -1, start
    while time.monotonic() - start < timeout:
        server.check_alive()
        received = sum(clients.ask("received"))
        if received != last:
            last, since = received, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return round(time.monotonic() - start, 2)
        time.sleep(0.1)  # polling the client processes' counters
    return None


def _measure(server: procs.Server, clients: Clients, publisher: Publisher, rate: float, seconds: float) -> dict:
    drained = _settle(server, clients)
    clients.ask("start")
    cpu, client_cpu, start = procs.cpu_seconds(server.pid), clients.cpu_seconds(), time.perf_counter()
    publisher.run(rate, seconds)
    elapsed = time.perf_counter() - start
    cpu = procs.cpu_seconds(server.pid) - cpu
    client_cpu = clients.cpu_seconds() - client_cpu
    replies = clients.ask("stop")
    latency = Histogram()
    for reply in replies:
        latency.merge(Histogram.from_json(reply["latency"]))
    messages = sum(r["messages"] for r in replies)
    return {"drained_before_s": drained,
            "offered_per_s": round(rate * clients.connected), "delivered_per_s": round(messages / elapsed),
            "messages_per_frame": round(messages / max(1, sum(r["frames"] for r in replies)), 2),
            "server_cpu": round(cpu / elapsed, 3), "clients_cpu": round(client_cpu / elapsed, 3),
            "delivered_per_cpu_s": round(messages / max(cpu, 1e-9)),
            **latency.summary_ms()}


def _one_server(kind: str, system: procs.Stack, n: int, seconds: float) -> dict:
    if kind == "ours":
        server = system.start("web")
        port = system.port
    else:
        port = procs.free_port()
        server = system.start_external("baseline", baseline.server_args(port), port,
                                       {"REDIS_URL": system.redis_url})
    publisher = Publisher(system.redis_url)
    try:
        rss_before = procs.rss_bytes(server.pid)
        clients = Clients(port, n)
        try:
            if clients.connected < n:
                raise RuntimeError(f"{kind}: only {clients.connected} of {n} clients connected: {clients.opened}")

            last_publish = [0.0]

            def primed() -> bool:
                server.check_alive()
                if time.monotonic() - last_publish[0] >= PRIME_EVERY:
                    publisher.publish(1, 1)
                    last_publish[0] = time.monotonic()
                return sum(clients.ask("primed")) >= clients.connected

            wait_for(primed, 120, f"every {kind} client to receive a price")
            _settle(server, clients)
            rss_idle = procs.rss_bytes(server.pid)
            steady = _measure(server, clients, publisher, STEADY_DELIVERIES / n, seconds)
            saturated = _measure(server, clients, publisher, SATURATING_DELIVERIES / n, seconds)
        finally:
            clients.close()
    finally:
        publisher.redis.close()
        system.stop_server("web" if kind == "ours" else "baseline")
    return {"clients": n, "memory_per_connection_kb": round((rss_idle - rss_before) / n / 1024, 1),
            "steady": steady, "saturated": saturated}


def _ratio(ours: float | None, theirs: float | None, lower_is_better: bool = False) -> float | None:
    if not ours or not theirs:
        return None
    return round(theirs / ours if lower_is_better else ours / theirs, 2)


def _rows(n: int, ours: dict, theirs: dict) -> list[dict]:
    o_sat, b_sat, o_st, b_st = ours["saturated"], theirs["saturated"], ours["steady"], theirs["steady"]
    label = f"fan-out {n:,} clients"
    return [
        {"metric": f"{label}: deliveries/s (saturated)", "ours": o_sat["delivered_per_s"],
         "baseline": b_sat["delivered_per_s"], "ratio": _ratio(o_sat["delivered_per_s"], b_sat["delivered_per_s"]),
         "unit": "msg/s", "goal": ">= 3x baseline",
         "note": f"server CPU ours {o_sat['server_cpu']:.0%}, baseline {b_sat['server_cpu']:.0%}; clients' CPU "
                 f"{o_sat['clients_cpu']:.0%}, {b_sat['clients_cpu']:.0%}; "
                 f"ours {o_sat['messages_per_frame']} msg/frame"},
        {"metric": f"{label}: deliveries per server CPU-second", "ours": o_sat["delivered_per_cpu_s"],
         "baseline": b_sat["delivered_per_cpu_s"],
         "ratio": _ratio(o_sat["delivered_per_cpu_s"], b_sat["delivered_per_cpu_s"]), "unit": "msg/CPU-s"},
        {"metric": f"{label}: p99 latency (saturated)", "ours": o_sat["p99_ms"], "baseline": b_sat["p99_ms"],
         "ratio": _ratio(o_sat["p99_ms"], b_sat["p99_ms"], lower_is_better=True), "unit": "ms"},
        {"metric": f"{label}: p50 latency at {STEADY_DELIVERIES:,} deliveries/s", "ours": o_st["p50_ms"],
         "baseline": b_st["p50_ms"], "unit": "ms"},
        {"metric": f"{label}: p99 latency at {STEADY_DELIVERIES:,} deliveries/s", "ours": o_st["p99_ms"],
         "baseline": b_st["p99_ms"], "ratio": _ratio(o_st["p99_ms"], b_st["p99_ms"], lower_is_better=True),
         "unit": "ms", "goal": "< 50 ms" if n == 1000 else None,
         "note": f"delivered ours {o_st['delivered_per_s']:,}/s, baseline {b_st['delivered_per_s']:,}/s"},
        {"metric": f"{label}: memory per idle connection", "ours": ours["memory_per_connection_kb"],
         "baseline": theirs["memory_per_connection_kb"], "unit": "KiB"},
    ]


def run(quick: bool) -> dict:
    procs.raise_fd_limit()
    baseline.ensure_venv()
    sizes = [1000] if quick else [1000, 10_000]
    seconds = 5.0 if quick else 10.0
    rows, details = [], {"client_processes": CLIENT_PROCESSES, "series": SERIES, "phase_seconds": seconds,
                         "web_cpus": sorted(procs.WEB_CPUS), "client_cpus": sorted(procs.LOAD_CPUS),
                         "baseline": baseline.requirements()}
    with procs.stack("fanout") as system:
        for n in sizes:
            try:
                ours = _one_server("ours", system, n, seconds)
                theirs = _one_server("baseline", system, n, seconds)
            except (RuntimeError, AssertionError, TimeoutError) as exc:
                # One size failing (a server that cannot take N clients) keeps the others' figures.
                details[f"{n}"] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
                rows.append({"metric": f"fan-out {n:,} clients", "note": f"FAILED: {str(exc)[:300]}"})
                continue
            details[f"{n}"] = {"ours": ours, "baseline": theirs}
            rows.extend(_rows(n, ours, theirs))
    return {"name": "fanout", "rows": rows, "details": details}
