"""``pasarwatch up``: start Redis (unless REDIS_URL is set), engine, web, worker and the demo feed.

Every part runs as its own process, as the Procfile runs them in production. A part that dies
is restarted (with a back-off); Ctrl-C stops the feed, web, worker and engine first and Redis
last, so nothing is cut off mid-write.

The embedded Redis asks for a password (generated once per data directory, kept in
``DATA_DIR/redis/password``, 0600; the directory is 0700). Every part gets the URL with the
password in ``REDIS_URL``, and ``DATA_DIR/redis.url`` (0600) holds it for the commands run
beside (base/redis_url.py) until the launcher stops.

``--demo`` replays real prices into a Redis of its own, in memory, with its own data directory
(``DATA_DIR/demo`` unless ``--data-dir`` is given): a deployment's data never sees demo ticks,
and every demo starts from the first day.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path

import redis

from base import redis_url
from base.config import Settings
from server.redis_process import RedisProcess, exit_with_parent, owner_only_dir, start_redis, stored_password

log = logging.getLogger("pasarwatch.up")

RESTART_BACKOFF_MAX = 30.0
PID_FILE = "up.pid"  # the running launcher's pid, beside redis.url


@dataclass
class Part:
    name: str
    args: list[str]
    process: subprocess.Popen | None = None
    restarts: list[float] = field(default_factory=list)
    one_shot: bool = False  # the demo feed ends by itself; do not restart it

    def start(self, env: dict) -> None:
        # Own process group: Ctrl-C reaches only the launcher, which stops parts in order.
        self.process = subprocess.Popen(self.args, env=env, start_new_session=True, preexec_fn=exit_with_parent)
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


def run_up(settings: Settings, demo: bool, data_dir_given: bool = False, engines: int = 1) -> int:
    data_dir = settings.data_dir if data_dir_given or not demo else settings.data_dir / "demo"
    owner_only_dir(data_dir)
    running = running_launcher(data_dir)
    if running is not None:
        print(f"pasarwatch up is already running with data directory {data_dir.resolve()} "
              f"(pid {running}); stop it first", file=sys.stderr)
        return 2
    if settings.redis_url and not demo:
        try:
            redis_url.connect(redis_url.Located(settings.redis_url, "REDIS_URL")).close()
        except redis_url.RedisUnavailable as exc:
            print(f"pasarwatch up: {exc}", file=sys.stderr)
            return 2
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        redis_process = None if settings.redis_url and not demo else _embedded_redis(data_dir, demo, settings)
    except RuntimeError as exc:  # no redis-server binary, or it would not start: the message says why
        print(f"pasarwatch up: could not start the embedded Redis: {' '.join(str(exc).split())[:300]}",
              file=sys.stderr)
        return 2
    url = redis_process.url if redis_process else settings.redis_url
    # The parts work in the same data directory (the demo's own, or the one --data-dir named).
    env = {**os.environ, "REDIS_URL": url, "PASARWATCH_DATA_DIR": str(data_dir)}
    if demo:
        # A deployment's notifications' Redis holds its subscribers: demo alerts must not reach them.
        if env.pop("RQ_REDIS_URL", "") or settings.rq_redis_url:
            print("  demo: RQ_REDIS_URL is ignored; the demo's notifications stay in its own Redis", flush=True)
        settings = replace(settings, rq_redis_url="")
    # Engines share the partitions through leases (server/leases.py); web and worker come after them.
    parts = [Part("engine" if engines == 1 else f"engine-{n + 1}", _command("engine")) for n in range(engines)]
    parts += [Part("web", _command("web"))]
    if settings.notify_url is None:
        print("  on a Redis Cluster without RQ_REDIS_URL: no notification worker (RQ needs a standalone Redis; "
              "alerts are still raised, stored and shown)", flush=True)
    else:
        parts.append(Part("worker", _command("worker")))
    started = len(parts)
    web_url = f"http://{settings.host}:{settings.port}"
    days: list = []
    try:
        url_path = redis_url.write_url_file(data_dir, url)
        (data_dir / PID_FILE).write_text(f"{os.getpid()}\n")
        print(f"  commands run beside find its Redis in {url_path}"
              f"{'' if data_dir == Path('var') else f' (give them --data-dir {data_dir})'}", flush=True)
        if demo:
            from server import demo as demo_feed

            days = demo_feed.load_days()
            first, last = demo_feed.period(days)
            print(f"  demo: replaying {first} to {last} at their real dates, in data directory "
                  f"{data_dir} (in memory; nothing of it is written to your own data)", flush=True)
            env["PASARWATCH_DEMO_TOKEN"] = _demo_device_token(url)
            parts.append(Part("demo", _command("demo", "--url", web_url), one_shot=True))
        for part in parts[:started]:
            part.start(env)
        if _wait_http(web_url + "/healthz", 30):
            print(f"\n  Pasarwatch is running: open {web_url}/  (Ctrl-C stops everything)\n", flush=True)
        else:
            log.error("web server did not come up on %s", web_url)
        if demo:
            parts[started].start(env)
            _demo_status(url, "running", days)
        while not stopping:
            _supervise(parts, env, url, days)
            time.sleep(0.5)  # supervision poll
    finally:
        log.info("stopping")
        redis_url.remove_url_file(data_dir, url)
        (data_dir / PID_FILE).unlink(missing_ok=True)
        for part in reversed(parts):
            part.stop()
        if redis_process is not None:
            redis_process.stop()
        log.info("stopped")
    return 0


def _embedded_redis(data_dir: Path, demo: bool, settings: Settings) -> RedisProcess:
    if settings.redis_url:
        print("  demo: REDIS_URL is ignored; the demo never writes into a deployment's Redis", flush=True)
    redis_dir = owner_only_dir(data_dir / "redis")
    process = start_redis(redis_dir, appendfsync="always", persist=not demo, die_with_parent=True,
                          password=stored_password(redis_dir / "password"))
    log.info("embedded redis-server on 127.0.0.1:%d, password in %s; %s", process.port, redis_dir / "password",
             "in memory only (demo)" if demo else f"append-only file in {redis_dir}")
    return process


def _supervise(parts: list[Part], env: dict, url: str, days: list) -> None:
    for part in parts:
        code = part.process.poll() if part.process else None
        if code is None or part.process is None:
            continue
        if part.one_shot:
            log.info("%s finished (exit %d)", part.name, code)
            part.process = None
            if part.name == "demo":
                _demo_finished(url, code, days)
            continue
        _restart(part, code, env)


def running_launcher(data_dir: Path) -> int | None:
    """The pid in ``up.pid`` when that launcher lives and the Redis in ``redis.url`` answers.

    Either alone is not enough: a killed launcher's external Redis still answers, and a pid
    from before a reboot may belong to another process by now."""
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
        os.kill(pid, 0)
        redis_url.connect(redis_url.locate(data_dir, "", data_dir_given=True), timeout=1).close()
    except (OSError, ValueError, redis_url.RedisUnavailable):
        return None  # no launcher, or files a killed one left behind
    return pid


def _demo_status(url: str, state: str, days: list, **extra) -> None:
    from server import demo as demo_feed

    client = redis.Redis.from_url(url)
    try:
        demo_feed.publish_status(client, state, days, **extra)
    except redis.RedisError as exc:  # the page then shows no status; the demo itself is unaffected
        log.warning("could not record the demo's state %s: %s", state, exc)
    finally:
        client.close()


def _demo_finished(url: str, code: int, days: list) -> None:
    if code == 0:
        _demo_status(url, "finished", days)
        print("  demo: the replay has ended; the page keeps its history and alerts", flush=True)
    else:
        _demo_status(url, "failed", days, exit_code=code)


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
