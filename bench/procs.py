"""Real processes for the benchmarks: Redis, the engine, web servers, each bounded and stopped.

The machine has few cores, so the web process under test gets a core of its own
(``WEB_CPUS``) and everything else (Redis, the engine, load generators, this process) the
others (``LOAD_CPUS``). CPU time and memory are read from /proc, so the figures are the
server's own, not the load generator's.
"""
from __future__ import annotations

import contextlib
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from collections.abc import Iterator

import httpx
import redis

from server import auth
from base.config import PROJECT_ROOT
from server.launcher import Part
from server.redis_process import RedisProcess, free_port, start_redis
from testkit.waiting import wait_for

_ALL_CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
PINNED = len(_ALL_CPUS) >= 2
WEB_CPUS = set(_ALL_CPUS[:1]) if PINNED else set(_ALL_CPUS)
LOAD_CPUS = set(_ALL_CPUS[1:]) if PINNED else set(_ALL_CPUS)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def pin_self_to_load_cpus() -> None:
    """This process and every child it starts from now on stay off the web server's core."""
    if PINNED:
        os.sched_setaffinity(0, LOAD_CPUS)


PRIORITY = -10


def raise_priority() -> int:
    """This process and its children ahead of other work on the machine (root only); the niceness.

    The machine may be shared (tests running beside the benchmark): without this, another
    process taking the web server's core for a few milliseconds shows up as latency.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, 0, PRIORITY)
    except OSError:
        pass
    return os.getpriority(os.PRIO_PROCESS, 0)


def raise_fd_limit() -> int:
    """Soft limit of open files up to the hard limit (inherited by children); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE


class Server:
    """A server subprocess with its log; ``stop`` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path, cpus: set[int]):
        self.name = name
        self.log = log
        handle = log.open("ab")
        preexec = (lambda: os.sched_setaffinity(0, cpus)) if PINNED else None
        self.process = subprocess.Popen(args, env=env, cwd=PROJECT_ROOT, stdout=handle,
                                        stderr=subprocess.STDOUT, preexec_fn=preexec)
        handle.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s: as ``pasarwatch up`` stops its parts."""
        Part(self.name, [], self.process).stop(timeout=10)


class Stack:
    """Redis plus Pasarwatch processes (``python -m server.cli NAME``) in a temporary directory."""

    def __init__(self, tmp: Path, appendfsync: str = "always"):
        self.tmp = tmp
        self.rules_dir = tmp / "rules"
        shutil.copytree(PROJECT_ROOT / "rules", self.rules_dir,
                        ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        self.redis_process: RedisProcess = start_redis(tmp / "redis", appendfsync=appendfsync)
        self.redis_url = self.redis_process.url
        self.port = free_port()
        self.servers: dict[str, Server] = {}

    def device_tokens(self, count: int) -> list[str]:
        """Tokens of ``count`` devices that may report for any market.

        The server limits each device's rate; a benchmark's load is that of a fleet of devices,
        so it spreads its batches over many tokens instead of raising the limit.
        """
        store = redis.Redis.from_url(self.redis_url)
        try:
            sources = ("bench-http", "bench-ws", "bench-latency")
            return [auth.issue(store, "device", f"bench-{i}", "device", ("*",), sources) for i in range(count)]
        finally:
            store.close()

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "REDIS_URL": self.redis_url, "PASARWATCH_HOST": "127.0.0.1",
                "PASARWATCH_PORT": str(self.port), "PASARWATCH_RULES_DIR": str(self.rules_dir),
                "PASARWATCH_DATA_DIR": str(self.tmp / "data"),  # this run's audit key and pin only
                "PYTHONPATH": str(PROJECT_ROOT), **extra}

    def start(self, name: str, **env: str) -> Server:
        cpus = WEB_CPUS if name == "web" else LOAD_CPUS
        server = Server(name, [sys.executable, "-m", "server.cli", name], self.env(**env),
                        self.tmp / f"{name}.log", cpus)
        self.servers[name] = server
        if name == "web":
            self.wait_port(server, self.port)
        return server

    def start_command(self, name: str, args: list[str], env: dict[str, str], cpus: set[int] = LOAD_CPUS) -> Server:
        server = Server(name, args, {**os.environ, **env}, self.tmp / f"{name}.log", cpus)
        self.servers[name] = server
        return server

    def start_external(self, name: str, args: list[str], port: int, env: dict[str, str]) -> Server:
        """A server that is not ours (the baseline), on the web server's core."""
        server = self.start_command(name, args, env, WEB_CPUS)
        self.wait_port(server, port)
        return server

    @staticmethod
    def wait_port(server: Server, port: int, timeout: float = 30.0) -> None:
        def up() -> bool:
            server.check_alive()
            return port_open(port)

        wait_for(up, timeout, f"{server.name} to listen on port {port}")

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the web server reports ready (/readyz: Redis, rules and the engine's heartbeat)."""
        def ready() -> bool:
            for server in self.servers.values():
                server.check_alive()
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz").status_code == 200

        wait_for(ready, timeout, "/readyz")

    def stop_server(self, name: str) -> None:
        server = self.servers.pop(name, None)
        if server:
            server.stop()

    def stop(self) -> None:
        for name in list(self.servers):
            self.stop_server(name)
        self.redis_process.stop()


LOG_DIR = Path(__file__).resolve().parent / "results" / "logs"


@contextlib.contextmanager
def stack(name: str, appendfsync: str = "always") -> Iterator[Stack]:
    """A fresh Redis (and room for servers) for one benchmark; everything stops on exit.

    The servers' logs are kept in bench/results/logs/NAME-*.log for a look after the run.
    """
    with tempfile.TemporaryDirectory(prefix="pasarwatch-bench-") as tmp:
        running = Stack(Path(tmp), appendfsync)
        try:
            yield running
        finally:
            running.stop()
            LOG_DIR.mkdir(parents=True, exist_ok=True)
            for log in Path(tmp).glob("*.log"):
                shutil.copyfile(log, LOG_DIR / f"{name}-{log.name}")
