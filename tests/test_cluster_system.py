"""The system on a real 3-master Redis Cluster (tests/cluster.py): two engines, a web process,
the same verdicts and alerts as one engine on a single Redis, prices through pub/sub to a
WebSocket client, and a cluster node restarted (its append-only file on) in the middle of the
stream with no tick lost."""
from __future__ import annotations

import os
import subprocess
import sys

import httpx
import orjson
import pytest
from websockets.sync.client import connect

from base.config import PROJECT_ROOT
from testkit.waiting import wait_for
from tests.system import System
from tests.test_launcher import Launcher
from tests.test_engines import ENV, days, outcome, owners, processed, run, same
from tests.test_pipeline import Messages


def numbered(day: list[dict], first: int) -> list[dict]:
    """The day's ticks with sequence numbers: a post repeated after an error cannot add them twice."""
    return [{**tick, "source": "feed", "seq": first + n} for n, tick in enumerate(day)]


def post_until_accepted(system: System, ticks: list[dict]) -> None:
    """A node that just restarted may refuse the first requests (503): retry, bounded."""
    def accepted() -> bool:
        response = system.post(ticks)
        assert response.status_code in (202, 503), response.text
        return response.status_code == 202

    wait_for(accepted, 30, "the web process to accept ticks again")


@pytest.mark.timeout(300)
def test_two_engines_on_a_cluster_judge_as_one_engine_and_lose_nothing_when_a_node_restarts(
        tmp_path, redis_cluster):
    reference = run(tmp_path / "single", engines=1)
    system = System(tmp_path / "cluster", env=ENV, cluster_url=redis_cluster.url)
    try:
        system.start("web")
        for n in (1, 2):
            system.start_process(f"engine-{n}", "engine")
        wait_for(lambda: len(set(owners(system).values()) - {""}) == 2 and all(owners(system).values()),
                 20, "two engines to share the partitions")
        with connect(f"{system.ws_url}/ws/prices") as ws:
            ws.send(orjson.dumps({"type": "subscribe"}).decode())
            messages = Messages(ws)
            messages.until(lambda m: m["type"] == "snapshot")
            sent = 0
            for index, day in enumerate(days()):
                post_until_accepted(system, numbered(day, sent))
                sent += len(day)
                wait_for(lambda: processed(system) >= sent, 60,
                         f"{sent} ticks processed (engine logs: {system.log('engine-1')[-1500:]})")
                if index == 0:  # prices reach the browser through the cluster's pub/sub
                    price = messages.until(lambda m: m["type"] == "price")
                    assert price["commodity"] in {t["commodity"] for t in day}
                if index == 10:
                    redis_cluster.restart_node(1)
        assert processed(system) == sent
        same(outcome(system), reference)
        # Both engines came back from the restart and share the partitions again.
        wait_for(lambda: len({p["owner"] for p in system.http.get("/readyz").json()["partitions"]}) == 2, 20,
                 f"both engines to hold partitions (engine-2 log: {system.log('engine-2')[-3000:]})")
    finally:
        system.stop()


def test_the_worker_says_notifications_are_not_available_on_a_cluster(tmp_path, redis_cluster):
    env = {**os.environ, "REDIS_URL": redis_cluster.url, "PASARWATCH_REDIS_CLUSTER": "true",
           "PASARWATCH_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run([sys.executable, "-m", "server.cli", "worker"], env=env, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "not available on a Redis Cluster" in result.stderr, result.stderr


@pytest.mark.timeout(180)
def test_up_with_two_engines_runs_on_a_cluster_without_a_notification_worker(tmp_path, redis_cluster):
    launcher = Launcher(tmp_path, "--engines", "2", REDIS_URL=redis_cluster.url, PASARWATCH_REDIS_CLUSTER="true",
                        PASARWATCH_PARTITIONS="4", PASARWATCH_ENGINE_LEASE="2")
    try:
        launcher.wait_serving(tmp_path / "var")

        def two_owners() -> bool:
            ready = httpx.get(launcher.url + "/readyz", timeout=5).json()
            return len({p["owner"] for p in ready.get("partitions", []) if p["owner"]}) == 2

        wait_for(two_owners, 60, f"two engines to hold partitions (log: {launcher.log()[-3000:]})")
        log = launcher.log()
        assert "no notification worker" in log
        assert "started engine-1" in log and "started engine-2" in log and "started web" in log
        assert "started worker" not in log
    finally:
        launcher.stop()
