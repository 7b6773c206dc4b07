"""The whole system as real processes on 127.0.0.1, for end-to-end tests.

A real redis-server on a free port, the engine and the web server as ``python -m server.cli``
subprocesses, and a copy of the rules directory the test may edit.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import orjson

from base.redis_url import data_client
from server import auth
from base.config import PROJECT_ROOT
from server.redis_process import RedisProcess, free_port, start_redis
from tests import partitions
from testkit.waiting import wait_for


# Every alert to the subscribers of its commodity, gathered for a second: the test does not wait
# for the shipped 30 s group_wait, nor for the morning (the shipped routes hold info alerts at night).
QUICK_ROUTING = """receivers:
  - name: pelanggan
    topics: true
route:
  receiver: pelanggan
  group_by: [commodity, province]
  group_wait: 1s
  group_interval: 1s
"""


class System:
    def __init__(self, tmp: Path, env: dict[str, str] | None = None, cluster_url: str | None = None):
        """``cluster_url``: run on that Redis Cluster (a node's URL) instead of a Redis of its own."""
        self.tmp = tmp
        self.rules_dir = tmp / "rules"
        shutil.copytree(PROJECT_ROOT / "rules", self.rules_dir,
                        ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        self.redis_process: RedisProcess | None = None if cluster_url else start_redis(tmp / "redis")
        redis_url = cluster_url or self.redis_process.url  # type: ignore[union-attr]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "REDIS_URL": redis_url,
            **({"PASARWATCH_REDIS_CLUSTER": "true"} if cluster_url else {}),
            "PASARWATCH_HOST": "127.0.0.1",
            "PASARWATCH_PORT": str(self.port),
            "PASARWATCH_RULES_DIR": str(self.rules_dir),
            "PASARWATCH_RULES_POLL": "0.1",
            "PASARWATCH_STALE_SWEEP": "0.5",
            "PASARWATCH_DATA_DIR": str(tmp / "data"),  # the audit key and pin of this system only
            "PYTHONPATH": str(PROJECT_ROOT),
            **(env or {}),
        }
        self.redis = data_client(redis_url, bool(cluster_url))
        # Tests act as an admin (who may also push ticks for any market).
        self.admin_token = auth.issue(self.redis, "person", "test-admin", "admin")
        self.auth_headers = {"authorization": f"Bearer {self.admin_token}"}
        self.http = httpx.Client(base_url=self.url, timeout=10, headers=self.auth_headers)
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def start(self, *names: str) -> System:
        for name in names or ("engine", "web"):
            self.start_process(name)
        if "web" in (names or ("web",)):
            wait_for(self._web_up, 20, "web server")
        if "engine" in (names or ("engine",)) and "web" in (names or ("web",)):
            wait_for(self._ready, 20, "engine to report its rules (readyz)")
        return self

    def _ready(self) -> bool:
        return self.http.get("/readyz").status_code == 200

    def start_process(self, name: str, command: str | None = None) -> subprocess.Popen:
        """``python -m server.cli COMMAND`` (default: the name), logged under ``name``."""
        running = self.processes.get(name)
        # A second start would orphan the first process: nothing would ever stop it.
        assert running is None or running.poll() is not None, f"{name} is already running"
        log_path = self.tmp / f"{name}.log"
        self.logs[name] = log_path
        handle = log_path.open("ab")
        process = subprocess.Popen([sys.executable, "-m", "server.cli", command or name], env=self.env,
                                   cwd=PROJECT_ROOT, stdout=handle, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def _web_up(self) -> bool:
        try:
            return self.http.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for _name, process in self.processes.items():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        self.http.close()
        self.redis.close()
        if self.redis_process is not None:
            self.redis_process.stop()

    def log(self, name: str) -> str:
        path = self.logs.get(name)
        return path.read_text(errors="replace") if path and path.exists() else ""

    # -- helpers for assertions ---------------------------------------------------------------
    def post(self, ticks, **params) -> httpx.Response:
        return self.http.post("/api/v1/ticks", content=orjson.dumps(ticks), params=params,
                              headers={"content-type": "application/json"})

    def processed(self) -> int:
        """Ticks the engine has committed (acked)."""
        return partitions.total(self.redis, "processed")

    def wait_processed(self, count: int, timeout: float = 20.0) -> None:
        wait_for(lambda: self.processed() >= count, timeout, f"engine to process {count} ticks "
                 f"(engine log: {self.log('engine')[-2000:]})")

    def alerts(self, **params) -> list[dict]:
        return self.http.get("/api/v1/alerts", params=params).json()["alerts"]
