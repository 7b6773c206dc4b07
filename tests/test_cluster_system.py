"""The system on a real 3-master Redis Cluster (tests/cluster.py): two engines, a web process,
the same verdicts and alerts as one engine on a single Redis, prices through pub/sub to a
WebSocket client, a cluster node restarted (its append-only file on) in the middle of the
stream with no tick lost, and Telegram notifications through a standalone Redis of their own
(RQ_REDIS_URL) to the fake Bot API."""
from __future__ import annotations

import os
import subprocess
import sys

import httpx
import orjson
import pytest
import redis
from websockets.sync.client import connect

from base.config import PROJECT_ROOT
from server.telegram_bot import SECRET_HEADER
from testkit.fakebot import FakeTelegram, message_update
from testkit.waiting import wait_for
from tests.redis_server import start_redis
from tests.system import QUICK_ROUTING, System
from tests.test_launcher import Launcher, assert_one_line_refusal
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


def test_without_rq_redis_url_the_worker_says_it_needs_a_standalone_redis(tmp_path, redis_cluster):
    env = {**os.environ, "REDIS_URL": redis_cluster.url, "PASARWATCH_REDIS_CLUSTER": "true",
           "PASARWATCH_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("RQ_REDIS_URL", None)
    result = subprocess.run([sys.executable, "-m", "server.cli", "worker"], env=env, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert_one_line_refusal(result, "set RQ_REDIS_URL")


SUBSCRIBER = 7001
SECRET = "cluster-webhook-secret"


@pytest.mark.timeout(300)
def test_on_a_cluster_with_rq_redis_url_a_subscriber_hears_of_an_alert(tmp_path, redis_cluster):
    for i in range(len(redis_cluster.ports)):  # what the module's other tests left
        redis_cluster.client(i).flushall()
    notify_redis = start_redis(tmp_path / "notify")
    with FakeTelegram() as fake:
        system = System(tmp_path / "cluster", cluster_url=redis_cluster.url, env={
            **ENV, "RQ_REDIS_URL": notify_redis.url, "TELEGRAM_BOT_TOKEN": "123:TEST",
            "TELEGRAM_BASE_URL": fake.base_url, "TELEGRAM_WEBHOOK_SECRET": SECRET, "TELEGRAM_TIMEOUT": "10",
            "PASARWATCH_NOTIFY_GROUP_WINDOW": "1"})
        (system.rules_dir / "routing.yaml").write_text(QUICK_ROUTING)
        try:
            system.start("web")
            for name in ("engine-1", "engine-2", "worker"):
                system.start_process(name, name.split("-")[0])
            # The subscription goes through the bot's webhook into the notifications' Redis.
            response = system.http.post("/telegram/webhook", headers={SECRET_HEADER: SECRET}, content=orjson.dumps(
                message_update(SUBSCRIBER, "/langganan semua", update_id=1)))
            assert response.status_code == 200, response.text
            assert "Berlangganan" in fake.messages(SUBSCRIBER)[0]["text"]
            sent = 0
            for day in days():
                post_until_accepted(system, numbered(day, sent))
                sent += len(day)
                wait_for(lambda: processed(system) >= sent, 60, f"{sent} ticks processed")
                if system.alerts(state="firing"):
                    break
            assert system.alerts(state="firing"), "the sample raised no alert"
            fake.wait_until(lambda: len(fake.messages(SUBSCRIBER)) >= 2, 60,
                            f"a notification (worker log: {system.log('worker')[-3000:]}; "
                            f"engine logs: {system.log('engine-1')[-1500:]} {system.log('engine-2')[-1500:]})")
            notification = fake.messages(SUBSCRIBER)[1]["text"]
            assert "Rp" in notification, notification
            listed = wait_for(lambda: system.http.get("/api/v1/notifications", params={"state": "sent"}).json()[
                "notifications"], 30, "the notification recorded as sent")
            assert {n["chat"] for n in listed} == {SUBSCRIBER}
            # Its records, queue and subscriptions are in the standalone Redis, not in the cluster.
            with redis.Redis.from_url(notify_redis.url) as notify:
                assert notify.keys("pw:notif:*") and notify.keys("rq:*") and notify.keys("pw:sub:*")
            for i in range(len(redis_cluster.ports)):
                node = redis_cluster.client(i)
                assert not [k for k in node.keys("*") if k.startswith((b"pw:notif", b"pw:sub", b"rq:"))]
            metrics = system.http.get("/metrics").text
            assert "pasarwatch_telegram_send_seconds_count" in metrics
            count = [line for line in metrics.splitlines() if line.startswith("pasarwatch_telegram_send_seconds_count")]
            assert float(count[0].split()[-1]) >= 1, count
        finally:
            system.stop()
            notify_redis.stop()


@pytest.mark.timeout(180)
def test_up_with_two_engines_runs_on_a_cluster_without_a_notification_worker(tmp_path, redis_cluster):
    launcher = Launcher(tmp_path, "--engines", "2", REDIS_URL=redis_cluster.url, PASARWATCH_REDIS_CLUSTER="true",
                        PASARWATCH_PARTITIONS="4", PASARWATCH_ENGINE_LEASE="2", TELEGRAM_WEBHOOK_SECRET=SECRET)
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
        # The notifications API and the bot's webhook say why there is nothing to show or take.
        for method, path in (("GET", "/api/v1/notifications"), ("POST", "/telegram/webhook")):
            response = httpx.request(method, launcher.url + path, timeout=5, json={"update_id": 1},
                                     headers={SECRET_HEADER: SECRET})
            assert response.status_code == 503, (path, response.text)
            assert response.json()["errors"][0]["field"] == "RQ_REDIS_URL"
    finally:
        launcher.stop()


@pytest.mark.timeout(180)
def test_up_on_a_cluster_with_rq_redis_url_runs_the_notification_worker_on_that_redis(tmp_path, redis_cluster):
    notify_server = start_redis(tmp_path / "notify")
    launcher = Launcher(tmp_path, "--engines", "2", REDIS_URL=redis_cluster.url, PASARWATCH_REDIS_CLUSTER="true",
                        PASARWATCH_PARTITIONS="4", PASARWATCH_ENGINE_LEASE="2", RQ_REDIS_URL=notify_server.url)
    try:
        launcher.wait_serving(tmp_path / "var")
        with redis.Redis.from_url(notify_server.url) as notify:
            # The worker registers itself with RQ in the notifications' Redis.
            wait_for(lambda: notify.smembers("rq:workers"), 60, f"the worker to start (log: {launcher.log()[-3000:]})")
        log = launcher.log()
        assert "started worker" in log and "no notification worker" not in log
        response = httpx.get(launcher.url + "/api/v1/notifications", timeout=5)
        assert response.status_code == 200 and response.json()["notifications"] == []
    finally:
        launcher.stop()
        notify_server.stop()
