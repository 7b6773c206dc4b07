"""``pasarwatch up``: start Redis (unless REDIS_URL is set), engine, web, worker and the demo feed.

Every part runs as its own process, as the Procfile runs them in production. A part that dies
is restarted (with a back-off); Ctrl-C stops the feed, web, worker and engine first and Redis
last, so nothing is cut off mid-write.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

from server.config import Settings
from server.redis_process import RedisProcess, start_redis

log = logging.getLogger("pasarwatch.up")

RESTART_BACKOFF_MAX = 30.0


@dataclass
class Part:
    name: str
    args: list[str]
    process: subprocess.Popen | None = None
    restarts: list[float] = field(default_factory=list)
    one_shot: bool = False  # the demo feed ends by itself; do not restart it

    def start(self, env: dict) -> None:
        # Own process group: Ctrl-C reaches only the launcher, which stops parts in order.
        self.process = subprocess.Popen(self.args, env=env, start_new_session=True)
        log.info("started %s (pid %d)", self.name, self.process.pid)

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", self.name, timeout)
            self.process.kill()
            self.process.wait()


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "server.cli", *args]


def _wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)  # waiting for a process we started to listen
    return False


def run_up(settings: Settings, demo: bool) -> int:
    env = dict(os.environ)
    redis_process: RedisProcess | None = None
    if not settings.redis_url:
        redis_process = start_redis(settings.data_dir / "redis", appendfsync="always")
        env["REDIS_URL"] = redis_process.url
        log.info("embedded redis-server on %s (append-only file in %s)", redis_process.url,
                 redis_process.data_dir)
    parts = [
        Part("engine", _command("engine")),
        Part("web", _command("web")),
        Part("worker", _command("worker")),
    ]
    if demo:
        env["PASARWATCH_DEMO_TOKEN"] = _demo_device_token(env["REDIS_URL"])
        parts.append(Part("demo", _command("demo", "--url", f"http://{settings.host}:{settings.port}"),
                          one_shot=True))
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        for part in parts[:3]:
            part.start(env)
        url = f"http://{settings.host}:{settings.port}"
        if _wait_http(url + "/healthz", 30):
            print(f"\n  Pasarwatch is running: open {url}/  (Ctrl-C stops everything)\n", flush=True)
        else:
            log.error("web server did not come up on %s", url)
        if demo:
            parts[3].start(env)
        while not stopping:
            for part in parts:
                code = part.process.poll() if part.process else None
                if code is None or part.process is None:
                    continue
                if part.one_shot:
                    log.info("%s finished (exit %d)", part.name, code)
                    part.process = None
                    continue
                _restart(part, code, env)
            time.sleep(0.5)  # supervision poll
    finally:
        log.info("stopping")
        for part in reversed(parts):
            part.stop()
        if redis_process is not None:
            redis_process.stop()
        log.info("stopped")
    return 0


def _demo_device_token(redis_url: str) -> str:
    """The demo feed pushes like any device: with its own token, for any market."""
    import redis

    from server import auth

    client = redis.Redis.from_url(redis_url)
    try:
        return auth.issue(client, "device", "demo-feed", "device", ("*",))
    finally:
        client.close()


def _restart(part: Part, code: int, env: dict) -> None:
    now = time.monotonic()
    part.restarts = [t for t in part.restarts if now - t < 60]
    delay = min(RESTART_BACKOFF_MAX, 0.5 * 2 ** len(part.restarts))
    log.error("%s exited with %d; restarting in %.1fs", part.name, code, delay)
    time.sleep(delay)
    part.restarts.append(time.monotonic())
    part.start(env)
