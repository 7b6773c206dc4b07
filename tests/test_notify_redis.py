"""Telegram notifications in a Redis of their own (RQ_REDIS_URL) beside the data Redis: while that
Redis is away the engine goes on scoring and its alerts wait, unacknowledged, in their streams;
once it is back they are taken into their groups, each once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from base import keys
from base.catalog import load_catalog
from base.redis_url import url_file
from rules.silences import new_silence
from stores.silences import save_silence
from testkit.waiting import wait_for
from tests import partitions
from tests.redis_server import start_redis
from tests.system import PROJECT_ROOT, QUICK_ROUTING, System
from tests.test_engines import ENV, PARTITIONS, days
from tests.test_worker_dispatch import add_alert, queued_jobs
from workers import groups
from workers import notifications as store
from workers import subscriptions as subs
from workers.dispatch import GROUP, dispatch_alerts
from workers.settings import NotifySettings

CHAT = 7002


def waiting_alerts(system: System) -> int:
    """Alert events read from the partitions' streams by the dispatcher but not acknowledged,
    plus those not read yet."""
    total = 0
    for partition in keys.partitions(PARTITIONS):
        if not system.redis.exists(partition.alerts):
            continue
        groups = {g["name"]: g for g in system.redis.xinfo_groups(partition.alerts)}
        group = groups.get(GROUP.encode())
        if group is None:
            total += system.redis.xlen(partition.alerts)
            continue
        unread = system.redis.xrange(partition.alerts, b"(" + group["last-delivered-id"], "+")
        total += group["pending"] + len(unread)
    return total


def system_with_notify_redis(tmp_path) -> tuple:
    """A system whose notifications are in a Redis of their own, with one subscriber to all."""
    notify_server = start_redis(tmp_path / "notify")
    system = System(tmp_path / "system", env={**ENV, "RQ_REDIS_URL": notify_server.url})
    (system.rules_dir / "routing.yaml").write_text(QUICK_ROUTING)
    with redis.Redis.from_url(notify_server.url) as notify, notify.pipeline() as pipe:
        subs.subscribe(pipe, CHAT, subs.ALL, subs.ALL)
        pipe.execute()
    return notify_server, system


@pytest.mark.timeout(240)
def test_while_the_notifications_redis_is_away_the_engine_scores_and_its_alerts_wait(tmp_path):
    notify_server, system = system_with_notify_redis(tmp_path)
    try:
        system.start()
        notify_server.stop()
        sent = 0
        for day in days():
            assert system.post(day).status_code == 202
            sent += len(day)
        system.wait_processed(sent, timeout=120)  # scored with the notifications' Redis away
        raised = sum(system.redis.xlen(p.alerts) for p in keys.partitions(PARTITIONS))
        assert raised > 0, "the sample raised no alert"
        assert "notifications' Redis unavailable" in system.log("engine")
        assert waiting_alerts(system) > 0
        # /metrics still answers, without the Telegram histogram it cannot read (zeros would
        # read to Prometheus as a counter reset).
        metrics = system.http.get("/metrics")
        assert metrics.status_code == 200 and "pasarwatch_tick_commit_seconds_count" in metrics.text
        assert "pasarwatch_telegram_send_seconds" not in metrics.text
        # Back on the same port, from its append-only file (the subscription survives).
        notify_server = start_redis(notify_server.data_dir, port=notify_server.port,
                                    password=notify_server.password)
        with redis.Redis.from_url(notify_server.url) as notify:
            wait_for(lambda: waiting_alerts(system) == 0, 60,
                     lambda: f"the waiting alerts handed on (engine log: {system.log('engine')[-2000:]})")
            wait_for(lambda: notify.zcard(store.INDEX) > 0, 30, "the groups flushed into notifications")
            assert "notifications' Redis is back" in system.log("engine")
            assert "pasarwatch_telegram_send_seconds_count" in system.http.get("/metrics").text
            taken = [item["id"] for raw in notify.zrange(store.INDEX, 0, -1)
                     for item in store.load_items(notify, raw.decode())]
            assert taken and len(taken) == len(set(taken)), "an alert event was taken twice"
    finally:
        system.stop()
        notify_server.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", [["server.cli", "worker"], ["workers.run"]], ids=["pasarwatch-worker", "workers.run"])
def test_a_worker_on_the_embedded_data_redis_reads_silences_there(tmp_path, command):
    """`pasarwatch worker` (or `python -m workers.run`) beside `pasarwatch up` (no REDIS_URL: the
    data Redis is found in the data directory) with RQ_REDIS_URL: its sweep flushes a due group,
    and the silence it must honour is in the data Redis, not the notifications' one."""
    data_server, notify_server = start_redis(tmp_path / "data-redis"), start_redis(tmp_path / "notify")
    data, notify = redis.Redis.from_url(data_server.url), redis.Redis.from_url(notify_server.url)
    log_path = tmp_path / "worker.log"
    worker = None
    try:
        partitions.fix(data, partitions.WORKER_PARTITIONS)
        with notify.pipeline() as pipe:
            subs.subscribe(pipe, CHAT, "cabai-rawit-merah", subs.ALL)
            pipe.execute()
        add_alert(data, 1)
        # The group falls due in 2 s; by then the silence (made after the alert was taken) is in
        # force, and only the worker's sweep is left to flush the group.
        quick = NotifySettings.from_env({"PASARWATCH_NOTIFY_GROUP_WINDOW": "2"})
        assert dispatch_alerts(data, load_catalog(), quick, notify=notify) == 1
        silence = new_silence({"matchers": ['commodity="cabai-rawit-merah"'], "duration": "4h",
                               "author": "budi", "comment": "panen"}, now=time.time())
        with data.pipeline() as pipe:
            save_silence(pipe, silence, [])
            pipe.execute()
        assert notify.zcard(groups.GROUPS_DUE) == 1, "the group was flushed before the silence was made"
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        url_file(data_dir).write_text(data_server.url)  # what `pasarwatch up` leaves for other commands
        env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "PASARWATCH_REDIS_CLUSTER")}
        env.update({"RQ_REDIS_URL": notify_server.url, "PASARWATCH_DATA_DIR": str(data_dir),
                    "PASARWATCH_NOTIFY_SWEEP": "0.2", "PYTHONPATH": str(PROJECT_ROOT)})
        with log_path.open("wb") as log:
            worker = subprocess.Popen([sys.executable, "-m", *command], env=env, cwd=PROJECT_ROOT,
                                      stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: notify.zcard(groups.GROUPS_DUE) == 0, 60,
                 lambda: f"the worker's sweep to flush the group ({log_path.read_text()[-2000:]})")
        assert queued_jobs(notify) == [], "the silenced alert was notified"
        assert notify.zcard(store.INDEX) == 0
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=20)
        data.close()
        notify.close()
        data_server.stop()
        notify_server.stop()


@pytest.mark.timeout(240)
def test_a_hung_notifications_redis_costs_the_engine_no_lease(tmp_path):
    """The notifications' Redis stops answering (SIGSTOP: its port still accepts connections,
    nothing replies). Each try costs the engine at most a quarter of its lease (2 s here), so it
    keeps every partition, scores every tick, and hands the waiting alerts on once it answers."""
    notify_server, system = system_with_notify_redis(tmp_path)
    try:
        system.start()
        notify_server.process.send_signal(signal.SIGSTOP)
        sent = 0
        for day in days():
            assert system.post(day).status_code == 202
            sent += len(day)
        system.wait_processed(sent, timeout=120)
        assert sum(system.redis.xlen(p.alerts) for p in keys.partitions(PARTITIONS)) > 0
        log = system.log("engine")
        assert "notifications' Redis unavailable" in log and "Timeout" in log, log[-2000:]
        assert "lost the lease" not in log and "lost Redis" not in log, log[-3000:]
        assert system.processes["engine"].poll() is None
        assert waiting_alerts(system) > 0
        notify_server.process.send_signal(signal.SIGCONT)
        with redis.Redis.from_url(notify_server.url) as notify:
            wait_for(lambda: waiting_alerts(system) == 0, 60,
                     lambda: f"the waiting alerts handed on (engine log: {system.log('engine')[-2000:]})")
            wait_for(lambda: notify.zcard(store.INDEX) > 0, 30, "the groups flushed into notifications")
        assert "lost the lease" not in system.log("engine")
    finally:
        notify_server.process.send_signal(signal.SIGCONT)
        system.stop()
        notify_server.stop()
