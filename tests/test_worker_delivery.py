"""Notifications end to end: alert stream -> dispatcher -> a real RQ worker process ->
python-telegram-bot -> the fake Bot API server, against a real Redis.

Failures of Telegram (429, 5xx, 403, a hung request) come from the fake server; a worker
killed with SIGKILL is a real process group killed mid-request.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry
from starlette.testclient import TestClient

from base.catalog import DEFAULT_DIR, load_catalog
from stores import histograms
from testkit.fakebot import FakeTelegram, message_update
from tests import partitions
from tests.partitions import ALERTS
from tests.redis_server import start_redis
from tests.test_telegram_bot import SECRET, make_app
from workers import notifications as store
from workers import subscriptions as subs
from workers.dispatch import GROUP, QUEUE, dispatch_alerts, enqueue_delivery
from workers.groups import GROUPS_DUE
from workers.messages import TELEGRAM_LIMIT, visible_len
from workers.settings import NotifySettings

PROJECT = Path(__file__).resolve().parent.parent
CATALOG = load_catalog()
KEY = "price-spike/cabai-rawit-merah/pasar-agung"


class Stack:
    """Redis, the fake Bot API and any number of worker processes, with the settings they share."""

    def __init__(self, tmp_path: Path, redis_url: str, fake: FakeTelegram):
        self.tmp_path = tmp_path
        self.client = redis.Redis.from_url(redis_url)
        partitions.fix(self.client, partitions.WORKER_PARTITIONS)
        self.fake = fake
        self.env = {
            "REDIS_URL": redis_url, "TELEGRAM_BOT_TOKEN": "123:TEST", "TELEGRAM_BASE_URL": fake.base_url,
            "TELEGRAM_WEBHOOK_SECRET": SECRET, "PASARWATCH_PUBLIC_URL": "https://pw.example",
            "PASARWATCH_NOTIFY_GROUP_WINDOW": "0.3", "PASARWATCH_NOTIFY_LEASE": "2",
            "PASARWATCH_NOTIFY_SWEEP": "0.5", "PASARWATCH_NOTIFY_RETRY_INTERVALS": "1,1",
            "TELEGRAM_TIMEOUT": "10", "PASARWATCH_LOG_LEVEL": "INFO",
        }
        self.workers: list[subprocess.Popen] = []
        self.next_alert = 1

    @property
    def settings(self) -> NotifySettings:
        return NotifySettings.from_env(self.env)

    def start_worker(self) -> subprocess.Popen:
        log = open(self.tmp_path / f"worker-{len(self.workers)}.log", "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "workers.run", "--name", f"test-worker-{len(self.workers)}-{os.getpid()}"],
            cwd=PROJECT, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)  # its own process group: the work horse dies with it
        log.close()
        self.workers.append(process)
        return process

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL a worker with everything it runs: its scheduler (same process group) and its
        work horse (RQ puts that in a process group of its own)."""
        for group in [process.pid, *_children(process.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        process.wait(timeout=20)

    def stop(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.kill(process)
        self.client.close()

    def logs(self) -> str:
        return "\n".join(path.read_text(errors="replace")[-3000:] for path in sorted(self.tmp_path.glob("worker-*.log")))

    # -- alerts -------------------------------------------------------------------------------
    def subscribe(self, chat: int, commodity: str = "cabai-rawit-merah", province: str = subs.ALL) -> None:
        with self.client.pipeline() as pipe:
            subs.subscribe(pipe, chat, commodity, province)
            pipe.execute()

    def add_alert(self, **overrides) -> dict:
        n = self.next_alert
        self.next_alert += 1
        event = {"type": "alert", "id": f"{1719800000000 + n}-0", "key": KEY, "rule": "price-spike",
                 "state": "firing", "severity": "warning", "commodity": "cabai-rawit-merah",
                 "market": "pasar-agung", "province": "32", "price": 387500.0, "ts": time.time(),
                 "started_at": time.time(), "resolved_at": None,
                 "expected": {"level": 60000.0, "lo": 52000.0, "hi": 68000.0},
                 "detectors": ["zscore"], "reasons": {"zscore": "z=5.1 vs mean Rp 60.000"},
                 "summary": "Harga melonjak", "routes": {"telegram": [], "topics": True}}
        event.update(overrides)
        self.client.xadd(ALERTS, {"a": orjson.dumps(event)}, id=event["id"])
        return event

    def dispatch(self) -> int:
        return dispatch_alerts(self.client, CATALOG, self.settings)

    def record(self, alert: dict, chat: int) -> store.Record:
        return store.load(self.client, store.pair_id(alert, chat))

    def state(self, alert: dict, chat: int) -> str | None:
        """The notification's state; None until its group is flushed."""
        record = self.record(alert, chat)
        return record.state if record is not None else None

    def wait(self, predicate, timeout: float = 30.0, what: str = ""):
        try:
            return self.fake.wait_until(predicate, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- worker logs ---\n{self.logs()}") from None

    def wait_settled(self, timeout: float = 30.0) -> None:
        """Until no alert group waits for its flush, every notification is final, nothing waits
        in the queue and no worker holds a lease: from then on no job can send anything (sending needs a pending notification and
        its lease). Scheduled leftovers (a retry of a job that a recovery overtook) may remain:
        they find the notification final and do nothing."""
        queue = Queue(QUEUE, connection=self.client)

        def settled() -> bool:
            states = [store.load(self.client, nid.decode()).state for nid in self.client.zrange(store.INDEX, 0, -1)]
            return (all(s in store.FINAL for s in states) and queue.count == 0
                    and not self.client.keys(store.lease_key("*")) and not self.client.zcard(GROUPS_DUE))

        self.wait(settled, timeout, "every notification final and RQ idle")


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                children.append(int(stat.parent.name))
    return children


@pytest.fixture
def stack(tmp_path):
    server = start_redis(tmp_path / "redis")
    with FakeTelegram() as fake:
        stack = Stack(tmp_path, server.url, fake)
        try:
            yield stack
        finally:
            stack.stop()
    server.stop()


def test_a_subscriber_hears_of_an_alert_within_seconds(stack):
    chat = 5001
    with TestClient(make_app(stack.env["REDIS_URL"], stack.settings)) as http:
        response = http.post("/telegram/webhook", headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
                             content=orjson.dumps(message_update(chat, "/langganan cabai rawit merah jawa barat",
                                                                 update_id=1)))
        assert response.status_code == 200
        assert "Berlangganan" in stack.fake.messages(chat)[0]["text"]
        stack.start_worker()
        alert = stack.add_alert()
        stack.add_alert(key="other/cabai-rawit-merah/pasar-x", province="33")  # not this chat's province
        started = time.monotonic()
        assert stack.dispatch() == 1
        [_, sent] = stack.wait(lambda: len(stack.fake.messages(chat)) == 2 and stack.fake.messages(chat))
        assert time.monotonic() - started < 15
        assert sent["parse_mode"] == "HTML" and sent["disable_notification"] is False
        text = sent["text"]
        assert "⚠️ <b>SIAGA</b> · Harga melonjak" in text
        assert "<b>Cabai Rawit Merah</b> di <b>Pasar Agung</b>, Jawa Barat" in text
        assert "<b>Rp 387.500/kg</b> (+545,8% dari biasanya Rp 60.000)" in text
        assert "WIB" in text and 'href="https://pw.example/#commodity=cabai-rawit-merah&amp;province=32&amp;market=pasar-agung"' in text
        nid = store.pair_id(alert, chat)
        assert sent["reply_markup"] == {"inline_keyboard": [[
            {"text": "Bisukan 1 jam", "callback_data": f"m:{nid}"}, {"text": "Ack", "callback_data": f"a:{nid}"}]]}
        stack.wait(lambda: stack.record(alert, chat).state == "sent")
        listed = http.get("/api/v1/notifications", params={"state": "sent"}).json()["notifications"]
        assert [(n["id"], n["chat"], n["alerts"], n["keys"]) for n in listed] == [(nid, chat, 1, [KEY])]
        # The worker timed its sendMessage call for /metrics (pasarwatch_telegram_send_seconds).
        timed = histograms.from_redis(histograms.TELEGRAM_SEND, stack.client.hgetall(histograms.TELEGRAM_SEND.key))
        assert timed.count == 1 and 0 < timed.total < 15


def test_names_with_html_characters_arrive_escaped(stack):
    rules = stack.tmp_path / "rules"
    shutil.copytree(DEFAULT_DIR, rules / "catalog")
    with open(rules / "catalog" / "markets.yaml", "a", encoding="utf-8") as markets:
        markets.write('  - {id: pasar-baru-uji, name: "Pasar <Baru> & Sons", province: "32", city: "Kota <Uji>"}\n')
    stack.env["PASARWATCH_RULES_DIR"] = str(rules)
    stack.subscribe(7)
    stack.start_worker()
    alert = stack.add_alert(market="pasar-baru-uji", key="r/cabai-rawit-merah/pasar-baru-uji",
                            summary="Lonjakan <50%> & naik", reasons={"zscore": "z>5 & <naik>"})
    stack.dispatch()
    [sent] = stack.wait(lambda: stack.fake.messages(7))
    text = sent["text"]
    assert "<b>Pasar &lt;Baru&gt; &amp; Sons</b>" in text
    assert "Lonjakan &lt;50%&gt; &amp; naik" in text and "z&gt;5 &amp; &lt;naik&gt;" in text
    assert "<Baru>" not in text and "& Sons" not in text
    stack.wait(lambda: stack.record(alert, 7).state == "sent")


def test_429_waits_retry_after_without_holding_up_other_chats_and_sends_once(stack):
    slow, other = 11, 12
    stack.subscribe(slow)
    stack.subscribe(other)
    stack.fake.fail("429", times=1, chat_id=slow, retry_after=2)
    stack.start_worker()
    alert = stack.add_alert()
    assert stack.dispatch() == 2
    stack.wait(lambda: stack.fake.messages(slow) and stack.fake.messages(other))
    stack.wait_settled()
    [refused] = stack.fake.calls("sendMessage", "429", slow)
    [delivered] = stack.fake.calls("sendMessage", "ok", slow)
    [other_delivered] = stack.fake.calls("sendMessage", "ok", other)
    assert delivered.at - refused.at >= 2.0  # Telegram's retry_after was honoured
    assert other_delivered.at < delivered.at  # the other chat did not wait for it
    record = stack.record(alert, slow)
    assert record.state == "sent" and record.attempts == 0


def test_5xx_is_retried_with_backoff_then_sent_once(stack):
    stack.subscribe(21)
    stack.fake.fail("5xx", times=1, status=502)
    stack.start_worker()
    alert = stack.add_alert()
    stack.dispatch()
    stack.wait(lambda: stack.fake.messages(21))
    stack.wait_settled()
    assert [c.outcome for c in stack.fake.calls("sendMessage", chat_id=21)] == ["5xx", "ok"]
    record = stack.record(alert, 21)
    assert (record.state, record.attempts) == ("sent", 1)


def test_after_the_last_retry_the_job_is_in_rqs_failed_registry_with_the_reason(stack):
    stack.subscribe(22)
    stack.fake.fail("5xx", times=None, chat_id=22, status=500)
    stack.start_worker()
    alert = stack.add_alert()
    stack.dispatch()
    nid = store.pair_id(alert, 22)
    stack.wait(lambda: stack.state(alert, 22) == "failed", timeout=40)
    record = stack.record(alert, 22)
    assert "Internal Server Error" in record.reason and "after 3 attempt(s)" in record.reason
    assert len(stack.fake.calls("sendMessage", "5xx", 22)) == 3  # first try and two retries
    registry = FailedJobRegistry(queue=Queue(QUEUE, connection=stack.client))
    stack.wait(lambda: store.job_id(nid) in registry.get_job_ids())
    job = Job.fetch(store.job_id(nid), connection=stack.client)
    assert "Internal Server Error" in job.latest_result().exc_string
    assert stack.fake.messages(22) == []


def test_403_unsubscribes_that_chat_everywhere(stack):
    blocked, fine = 31, 32
    stack.subscribe(blocked)
    stack.subscribe(blocked, "bawang-merah", "32")
    stack.subscribe(fine)
    stack.fake.fail("403", times=1, chat_id=blocked)
    stack.start_worker()
    alert = stack.add_alert()
    stack.dispatch()
    stack.wait(lambda: stack.state(alert, blocked) == "failed")
    assert "403" in stack.record(alert, blocked).reason
    assert stack.client.smembers(subs.chat_key(blocked)) == set()
    assert stack.client.smembers(subs.topic_key("cabai-rawit-merah")) == {b"32"}
    assert stack.client.smembers(subs.topic_key("bawang-merah", "32")) == set()
    stack.wait(lambda: stack.fake.messages(fine))
    stack.wait(lambda: "unsubscribed" in stack.logs(), what="the unsubscription in the worker's log")
    # The next alert no longer goes to the chat that blocked the bot.
    stack.add_alert(key="another/cabai-rawit-merah/pasar-agung")
    assert stack.dispatch() == 1


def test_a_burst_of_50_alerts_to_one_chat_becomes_a_few_digests(stack):
    stack.env["PASARWATCH_NOTIFY_GROUP_WINDOW"] = "3"
    stack.subscribe(41)
    stack.start_worker()
    markets = sorted(CATALOG.markets)[:10]
    for i in range(50):
        market = markets[i % len(markets)]
        stack.add_alert(key=f"rule-{i}/cabai-rawit-merah/{market}", market=market,
                        severity="critical" if i % 5 == 0 else "warning")
    assert stack.dispatch() == 50
    stack.wait_settled()
    messages = stack.fake.messages(41)
    assert 1 <= len(messages) <= 3
    assert messages[0]["text"].startswith("📣 <b>50 pemberitahuan harga</b> (10 awas, 40 siaga)")
    lines = [line for m in messages for line in m["text"].split("\n") if line.startswith(("⚠️", "🚨"))]
    assert len(lines) == 50
    assert all(visible_len(m["text"]) <= TELEGRAM_LIMIT for m in messages)
    [record_id] = [nid.decode() for nid in stack.client.zrange(store.INDEX, 0, -1)]
    assert store.load(stack.client, record_id).count == 50
    # About one message a second to one chat.
    times = [c.at for c in stack.fake.calls("sendMessage", "ok", 41)]
    assert all(b - a >= 0.9 for a, b in zip(times, times[1:]))


def test_the_same_alert_dispatched_and_enqueued_twice_is_sent_once(stack):
    stack.subscribe(51)
    stack.start_worker()
    alert = stack.add_alert()
    assert stack.dispatch() == 1
    # The engine restarts from an old checkpoint and dispatches everything again.
    stack.client.xgroup_setid(ALERTS, GROUP, "0")
    assert stack.dispatch() == 0
    stack.wait(lambda: stack.fake.messages(51))
    stack.wait_settled()
    # A stray second job for the same notification (as a recovery might make) sends nothing.
    job = enqueue_delivery(Queue(QUEUE, connection=stack.client), store.pair_id(alert, 51), stack.settings,
                           attempt="again")
    stack.wait(lambda: job.get_status(refresh=True) == "finished")
    assert job.return_value() == "already sent"
    stack.wait_settled()
    assert len(stack.fake.messages(51)) == 1


def test_a_worker_killed_mid_send_delivers_every_part_exactly_once(stack):
    chat = 61
    stack.subscribe(chat)
    # Enough alerts for a digest of several messages; the second message hangs at Telegram.
    stack.env["PASARWATCH_NOTIFY_GROUP_WINDOW"] = "2"
    for i in range(150):
        stack.add_alert(key=f"rule-{i}/cabai-rawit-merah/pasar-agung")
    stack.fake.fail("hang", times=1, chat_id=chat, skip=1)
    doomed = stack.start_worker()
    assert stack.dispatch() == 150
    stack.wait(lambda: stack.fake.hanging == 1, what="the second message to hang")
    stack.kill(doomed)  # the worker, its scheduler and the work horse that is mid-request
    stack.fake.release()  # the hung request is closed unanswered: that message was not delivered
    stack.start_worker()
    stack.wait_settled(timeout=45)
    [nid] = [n.decode() for n in stack.client.zrange(store.INDEX, 0, -1)]
    record = store.load(stack.client, nid)
    assert record.state == "sent" and len(record.parts) >= 3
    delivered = [m["text"] for m in stack.fake.messages(chat)]
    assert delivered == [part.text for part in record.parts]  # each once, in order, none lost
    assert len(stack.fake.calls("sendMessage", "hang", chat)) == 1
    assert int(stack.client.hget(store.record_key(nid), "recoveries")) >= 1
    assert sum(1 for text in delivered for line in text.split("\n") if line.startswith("⚠️")) == 150


def test_after_telegram_answers_500s_429s_and_hangs_everything_queued_is_delivered_once(stack):
    chats = [81, 82, 83, 84]
    for chat in chats:
        stack.subscribe(chat)
    # A hung request is given up after 1 s; six attempts cover the worst case of one chat
    # meeting every 500 and every hang below.
    stack.env.update({"TELEGRAM_TIMEOUT": "1", "PASARWATCH_NOTIFY_RETRY_INTERVALS": "1,1,1,1,1"})
    # The outage, in the order Telegram answers: three 500s, two 429s, two requests left hanging.
    stack.fake.fail("5xx", times=3, status=500)
    stack.fake.fail("429", times=2, retry_after=1)
    stack.fake.fail("hang", times=2)
    stack.start_worker()
    alert = stack.add_alert()
    assert stack.dispatch() == len(chats)
    stack.wait(lambda: all(stack.fake.messages(chat) for chat in chats), 45, "every chat after the outage")
    stack.wait_settled(timeout=45)
    outcomes = [c.outcome for c in stack.fake.calls("sendMessage")]
    assert (outcomes.count("5xx"), outcomes.count("429"), outcomes.count("hang")) == (3, 2, 2)
    for chat in chats:
        assert len(stack.fake.messages(chat)) == 1, chat
        assert stack.record(alert, chat).state == "sent"


def test_without_a_token_a_notification_is_recorded_as_not_sent(stack):
    stack.env["TELEGRAM_BOT_TOKEN"] = ""
    stack.subscribe(71)
    stack.start_worker()
    alert = stack.add_alert()
    stack.dispatch()
    stack.wait(lambda: stack.state(alert, 71) == "not_sent")
    assert stack.record(alert, 71).reason == "TELEGRAM_BOT_TOKEN is not set"
    assert stack.fake.calls() == []
    with TestClient(make_app(stack.env["REDIS_URL"], stack.settings)) as http:
        listed = http.get("/api/v1/notifications?state=not_sent").json()
    assert [(n["chat"], n["reason"]) for n in listed["notifications"]] == [(71, "TELEGRAM_BOT_TOKEN is not set")]
    assert listed["counts"]["not_sent"] == 1


def test_an_alert_held_by_quiet_hours_is_delivered_when_the_window_opens(stack):
    chat = 9100
    stack.start_worker()
    opens_at = time.time() + 2
    alert = stack.add_alert(routes={"telegram": [], "topics": False, "receivers": [
        {"name": "operator", "route": "root/0", "telegram": [chat], "topics": False, "group_key": "g",
         "group_by": [], "group_wait": 0, "group_interval": 0, "repeat_interval": None,
         "deliver_at": opens_at}]})
    assert stack.dispatch() == 0  # nothing for now: the route is in its quiet hours
    assert stack.fake.messages(chat) == []
    stack.dispatch()  # a second dispatch (e.g. after an engine restart) schedules nothing twice
    stack.wait(lambda: stack.fake.messages(chat), 30, "the held alert after its window opened")
    assert time.time() >= opens_at
    stack.wait_settled()
    assert len(stack.fake.messages(chat)) == 1
    assert stack.record(alert, chat).state == "sent"
