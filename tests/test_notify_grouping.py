"""Notifications follow routing.yaml's group_wait, group_interval and repeat_interval, the way
Alertmanager applies them (workers/grouping.py, workers/groups.py).

The timing tests run the dispatcher against a real Redis with the clock passed in (``now``);
the last test runs a real RQ worker against the fake Bot API with real time. The routing tree
is read from a routing.yaml in a temporary rules directory; PASARWATCH_NOTIFY_GROUP_WINDOW is
set to a value that would show if it were used instead.
"""
from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
import redis
from rq import Queue

from base.catalog import load_catalog
from rules.loader import load_rules
from rules.routing import Router, routes_json
from rules.silences import new_silence
from stores.silences import save_silence
from tests import partitions
from tests.partitions import ALERTS
from tests.redis_server import start_redis
from tests.test_worker_delivery import Stack, stack  # noqa: F401 - the fixture
from workers import groups
from workers import notifications as store
from workers import subscriptions as subs
from workers.dispatch import QUEUE, dispatch_alerts
from workers.settings import NotifySettings

CATALOG = load_catalog()
SETTINGS = NotifySettings.from_env({"PASARWATCH_NOTIFY_GROUP_WINDOW": "1", "PASARWATCH_NOTIFY_LEASE": "5"})
CHILLI, SHALLOT = 1, 2  # a subscriber of each commodity

ROUTING = """
receivers:
  - name: pelanggan
    topics: true
route:
  receiver: pelanggan
  group_by: [commodity, province]
  group_wait: 40s
  group_interval: 10m
{extra}
"""
REPEAT = "  repeat_interval: 3h"
T = 1_900_000_000.0  # the clock of the timing tests


def load_router(tmp_path: Path, routing: str) -> Router:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "routing.yaml").write_text(routing, encoding="utf-8")
    return load_rules([rules / "routing.yaml"], CATALOG, set()).router


class Alerts:
    """Alert events as the engine writes them: routed by the tree from routing.yaml."""

    def __init__(self, client: redis.Redis, router: Router):
        self.client = client
        self.router = router

    def emit(self, at: float, market: str, commodity: str = "cabai-rawit-merah", state: str = "firing",
             severity: str = "warning", muted: bool = False, transition: str | None = None) -> dict:
        event = {"type": "alert", "key": f"lonjakan/{commodity}/{market}", "rule": "lonjakan",
                 "state": state, "severity": severity, "commodity": commodity, "market": market,
                 "province": "32", "price": 90000.0, "ts": at, "started_at": at,
                 "resolved_at": at if state == "resolved" else None, "summary": "Harga melonjak",
                 "transition": transition or ("resolved" if state == "resolved" else "fired")}
        event["routes"] = routes_json([] if muted else self.router.route(event, at))
        event["id"] = self.client.xadd(ALERTS, {"a": orjson.dumps(event)}).decode()
        return event

    def dispatch(self, at: float) -> int:
        return dispatch_alerts(self.client, CATALOG, SETTINGS, now=at)

    def notifications(self) -> list[tuple[int, list[str]]]:
        """Every notification made so far, oldest first: (chat, "state:key" of its alerts)."""
        made = []
        for nid in self.client.zrange(store.INDEX, 0, -1):
            record = store.load(self.client, nid.decode())
            items = store.load_items(self.client, record.id)
            made.append((record.chat, [f"{a['state']}:{a['key'].split('/')[-1]}" for a in items]))
        return made


@pytest.fixture
def server(tmp_path):
    running = start_redis(tmp_path / "redis")
    yield running
    running.stop()


@pytest.fixture
def client(server):
    connection = redis.Redis.from_url(server.url)
    partitions.fix(connection, partitions.WORKER_PARTITIONS)
    for chat, commodity in ((CHILLI, "cabai-rawit-merah"), (SHALLOT, "bawang-merah")):
        with connection.pipeline() as pipe:
            subs.subscribe(pipe, chat, commodity, subs.ALL)
            pipe.execute()
    yield connection
    connection.close()


@pytest.fixture
def alerts(client, tmp_path) -> Alerts:
    return Alerts(client, load_router(tmp_path, ROUTING.format(extra=REPEAT)))


def test_the_first_notification_of_a_group_goes_out_after_group_wait_not_before(alerts, client, server):
    alerts.emit(T, "pasar-agung")
    assert alerts.dispatch(T) == 1
    assert alerts.dispatch(T + SETTINGS.group_window + 1) == 0  # not the 1 s window of the setting
    assert alerts.dispatch(T + 39.9) == 0
    assert alerts.notifications() == []
    # The timer is in Redis: a restarted engine (a new connection, nothing in memory) keeps it.
    restarted = Alerts(redis.Redis.from_url(server.url), alerts.router)
    restarted.dispatch(T + 40)
    assert alerts.notifications() == [(CHILLI, ["firing:pasar-agung"])]
    [nid] = [n.decode() for n in client.zrange(store.INDEX, 0, -1)]
    assert Queue(QUEUE, connection=client).get_job_ids() == [store.job_id(nid)]  # delivered now
    restarted.client.close()


def test_two_alerts_of_one_group_within_group_wait_make_one_notification(alerts):
    alerts.emit(T, "pasar-agung")
    alerts.dispatch(T)
    alerts.emit(T + 25, "pasar-kosambi")
    alerts.dispatch(T + 25)
    alerts.dispatch(T + 40)
    assert alerts.notifications() == [(CHILLI, ["firing:pasar-agung", "firing:pasar-kosambi"])]


def test_a_change_after_the_first_notification_waits_for_group_interval(alerts):
    alerts.emit(T, "pasar-agung")
    alerts.dispatch(T)
    alerts.dispatch(T + 40)  # the first notification; group_interval ticks from here
    alerts.emit(T + 100, "pasar-kosambi")
    alerts.dispatch(T + 100)
    alerts.dispatch(T + 639)
    assert len(alerts.notifications()) == 1
    alerts.dispatch(T + 640)
    # The group as it is: the alert already told, and the new one.
    assert alerts.notifications()[1:] == [(CHILLI, ["firing:pasar-agung", "firing:pasar-kosambi"])]
    # A resolve is a change too: it waits for the next tick, and leaves the group after it.
    alerts.emit(T + 700, "pasar-agung", state="resolved")
    alerts.dispatch(T + 700)
    alerts.dispatch(T + 1239)
    assert len(alerts.notifications()) == 2
    alerts.dispatch(T + 1240)
    assert alerts.notifications()[2:] == [(CHILLI, ["firing:pasar-kosambi", "resolved:pasar-agung"])]


def test_an_unchanged_group_is_sent_again_after_repeat_interval_without_any_tick(alerts, client):
    alerts.emit(T, "pasar-agung")
    alerts.dispatch(T)
    alerts.dispatch(T + 40)
    entries = client.xlen(ALERTS)
    for at in (T + 41, T + 3600, T + 40 + 10799):
        alerts.dispatch(at)
    assert len(alerts.notifications()) == 1
    alerts.dispatch(T + 40 + 10800)
    assert alerts.notifications() == [(CHILLI, ["firing:pasar-agung"])] * 2
    alerts.dispatch(T + 40 + 2 * 10800)
    assert len(alerts.notifications()) == 3
    assert client.xlen(ALERTS) == entries  # no new alert event, no tick: the timer alone


def test_a_route_without_repeat_interval_never_repeats(client, tmp_path):
    alerts = Alerts(client, load_router(tmp_path, ROUTING.format(extra="")))
    alerts.emit(T, "pasar-agung")
    alerts.dispatch(T)
    alerts.dispatch(T + 40)
    alerts.dispatch(T + 30 * 86400)
    assert len(alerts.notifications()) == 1
    assert client.zcard(groups.GROUPS_DUE) == 0  # nothing left to wake up for


def test_groups_are_independent(alerts):
    alerts.emit(T, "pasar-agung")
    alerts.dispatch(T)
    alerts.emit(T + 30, "pasar-agung", commodity="bawang-merah")
    alerts.dispatch(T + 30)
    alerts.dispatch(T + 40)
    assert alerts.notifications() == [(CHILLI, ["firing:pasar-agung"])]
    alerts.dispatch(T + 70)  # the shallot group's own group_wait
    assert alerts.notifications()[1:] == [(SHALLOT, ["firing:pasar-agung"])]
    # A change in each: each waits for its own group's next tick (T+640 and T+670).
    alerts.emit(T + 100, "pasar-kosambi")
    alerts.emit(T + 100, "pasar-kosambi", commodity="bawang-merah")
    alerts.dispatch(T + 100)
    alerts.dispatch(T + 640)
    assert [chat for chat, _ in alerts.notifications()[2:]] == [CHILLI]
    alerts.dispatch(T + 670)
    assert [chat for chat, _ in alerts.notifications()[2:]] == [CHILLI, SHALLOT]


def test_an_alert_that_resolves_before_anyone_heard_of_it_is_not_sent(alerts, client):
    alerts.emit(T, "pasar-agung")
    alerts.dispatch(T)
    alerts.emit(T + 10, "pasar-agung", state="resolved")
    alerts.dispatch(T + 10)
    alerts.dispatch(T + 40)
    assert alerts.notifications() == []
    assert client.zcard(groups.GROUPS_DUE) == 0 and not client.keys("pw:notif:group:*")


def test_a_muted_alert_leaves_its_group_unannounced_and_comes_back_as_news(alerts):
    alerts.emit(T, "pasar-agung")
    alerts.emit(T, "pasar-kosambi")
    alerts.dispatch(T)
    alerts.dispatch(T + 40)
    alerts.emit(T + 100, "pasar-agung", muted=True)  # silenced: the engine routes it nowhere
    alerts.dispatch(T + 100)
    alerts.dispatch(T + 40 + 10800)  # the reminder leaves the silenced alert out
    assert alerts.notifications()[1:] == [(CHILLI, ["firing:pasar-kosambi"])]
    alerts.emit(T + 11000, "pasar-agung", transition="unmuted")  # the silence is over
    alerts.dispatch(T + 11000)
    alerts.dispatch(T + 40 + 10800 + 600)
    assert alerts.notifications()[2:] == [(CHILLI, ["firing:pasar-kosambi", "firing:pasar-agung"])]


def test_a_silence_made_after_an_alert_was_told_keeps_it_out_of_reminders(alerts, client):
    alerts.emit(T, "pasar-agung")
    alerts.emit(T, "pasar-agung", commodity="bawang-merah")
    alerts.dispatch(T)
    alerts.dispatch(T + 40)
    assert len(alerts.notifications()) == 2
    silence = new_silence({"matchers": ['commodity="cabai-rawit-merah"'], "duration": "4h", "author": "budi",
                           "comment": "panen"}, now=T + 100)
    with client.pipeline() as pipe:
        save_silence(pipe, silence, [])
        pipe.execute()
    alerts.dispatch(T + 40 + 10800)  # no new event: the silence is read when the group flushes
    assert alerts.notifications()[2:] == [(SHALLOT, ["firing:pasar-agung"])]
    alerts.dispatch(T + 40 + 2 * 10800)  # the silence is over: reminded again
    assert sorted(chat for chat, _ in alerts.notifications()[3:]) == [CHILLI, SHALLOT]


def test_a_replayed_stream_changes_no_group(alerts, client):
    alerts.emit(T, "pasar-agung")
    alerts.dispatch(T)
    alerts.dispatch(T + 40)
    alerts.emit(T + 100, "pasar-agung", state="resolved")
    alerts.dispatch(T + 100)
    alerts.dispatch(T + 640)
    assert [items for _, items in alerts.notifications()] == [["firing:pasar-agung"], ["resolved:pasar-agung"]]
    client.xgroup_setid(ALERTS, "notify", "0")  # the engine restarts from an old checkpoint
    alerts.dispatch(T + 700)
    alerts.dispatch(T + 30 * 86400)
    assert len(alerts.notifications()) == 2 and not client.keys("pw:notif:group:*")


def test_a_real_worker_sends_what_routing_yaml_says_when_it_says(stack, tmp_path):  # noqa: F811
    """group_wait 4 s, group_interval 5 s, repeat_interval 10 s; the 0.3 s window of
    PASARWATCH_NOTIFY_GROUP_WINDOW would send at once. The worker's sweep flushes the groups
    (no engine runs here), every 0.5 s."""
    router = load_router(tmp_path, ROUTING.replace("40s", "4s").replace("10m", "5s")
                         .format(extra="  repeat_interval: 10s"))
    chat = 7001
    stack.subscribe(chat)
    stack.start_worker()

    def add(market: str) -> dict:
        event = {"key": f"lonjakan/cabai-rawit-merah/{market}", "market": market, "ts": time.time()}
        labels = {"rule": "price-spike", "severity": "warning", "commodity": "cabai-rawit-merah",
                  "province": "32", "state": "firing", **event}
        return stack.add_alert(**event, routes=routes_json(router.route(labels, time.time())))

    t0 = time.time()
    add("pasar-agung")
    add("pasar-kosambi")
    assert stack.dispatch() == 2
    [first] = stack.wait(lambda: stack.fake.calls("sendMessage", "ok", chat), 30, "the first message")
    assert first.at >= t0 + 4.0  # group_wait, not before
    assert "2 pemberitahuan harga" in first.params["text"]  # both alerts, one message
    assert "Pasar Agung" in first.params["text"] and "Pasar Kosambi" in first.params["text"]
    add("pasar-kranji")
    stack.dispatch()
    second = stack.wait(lambda: stack.fake.calls("sendMessage", "ok", chat)[1:], 30, "the change")[0]
    assert second.at >= t0 + 4.0 + 5.0  # the first flush + group_interval
    assert "3 pemberitahuan harga" in second.params["text"]
    entries = stack.client.xlen(ALERTS)
    third = stack.wait(lambda: stack.fake.calls("sendMessage", "ok", chat)[2:], 40, "the reminder")[0]
    assert third.at >= t0 + 4.0 + 5.0 + 10.0  # the last message + repeat_interval, on a tick
    assert "3 pemberitahuan harga" in third.params["text"]
    assert stack.client.xlen(ALERTS) == entries

