"""Silences and acknowledgements: validation, the HTTP API on a real Redis, and the engine."""
from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis
from starlette.applications import Starlette
from starlette.testclient import TestClient

from detectors.stack import DETECTOR_NAMES
from base.catalog import load_catalog
from rules.engine import RuleEngine
from rules.loader import parse_rule_text
from rules.rulebook import Rulebook
from rules.silences import SilenceError, expire, is_silenced, new_silence, silence_state
from server import auth
from base import keys
from server.access import Gate
from base.config import Settings
from base.keys import ACKS, SILENCE_ENDS, SILENCES
from server.silences import MAX_LIVE, _save, routes
from stores.silences import EXPIRED_KEPT, active_silences, save_silence
from tests import partitions
from tests.redis_server import start_redis

ALERT = {"rule": "kenaikan-tajam", "severity": "warning", "commodity": "cabai-rawit-merah",
         "market": "pasar-agung", "province": "32", "labels": {"tier": "market"}}


def silence(**body) -> dict:
    defaults = {"matchers": ['commodity="cabai-rawit-merah"'], "author": "budi", "comment": "panen"}
    if "ends_at" not in body:
        defaults["duration"] = "2h"
    return new_silence({**defaults, **body}, now=1000.0)


def test_a_silence_mutes_only_matching_alerts_and_only_while_it_lasts():
    s = silence(matchers=['commodity="cabai-rawit-merah"', 'tier="market"', 'severity!="critical"'])
    assert is_silenced(ALERT, [s], 1000.0) == s
    assert is_silenced({**ALERT, "market": "pasar-kosambi"}, [s], 1000.0 + 7199) == s
    assert is_silenced({**ALERT, "severity": "critical"}, [s], 1000.0) is None
    assert is_silenced({**ALERT, "commodity": "bawang-merah"}, [s], 1000.0) is None
    assert is_silenced(ALERT, [s], 1000.0 + 7200) is None
    later = silence(starts_at=5000.0, ends_at=9000.0)
    assert silence_state(later, 1000.0) == "pending" and is_silenced(ALERT, [later], 1000.0) is None
    assert is_silenced(ALERT, [later], 5000.0) == later


def test_expiring_keeps_the_silence_with_its_end_moved_to_now():
    s = silence()
    ended = expire(s, 2000.0, by="ani")
    assert ended["ends_at"] == 2000.0 and ended["expired_by"] == "ani" and ended["author"] == "budi"
    assert silence_state(ended, 2000.0) == "expired"
    assert expire(ended, 3000.0) is ended  # already over: unchanged, its audit trail intact


@pytest.mark.parametrize("body, field, reason", [
    ({"matchers": []}, "matchers", "required"),
    ({"matchers": ["commodity == cabai"]}, "matchers", "bad_matcher"),
    ({"matchers": ['market=~".*"']}, "matchers", "matches_everything"),
    ({"duration": "soon"}, "duration", "bad_duration"),
    ({"duration": None, "starts_at": 100.0, "ends_at": 500.0}, "ends_at", "in_past"),
    ({"duration": None, "ends_at": 500.0}, "ends_at", "before_start"),
    ({"starts_at": "2024-07-01T10:00:00"}, "starts_at", "no_timezone"),
    ({"author": " "}, "author", "required"),
    ({"colour": "red"}, "colour", "unknown_field"),
])
def test_bad_silences_are_refused_with_the_field_and_reason(body, field, reason):
    full = {"matchers": ['commodity="cabai-rawit-merah"'], "duration": "2h", "author": "budi", "comment": "x", **body}
    if full.get("duration") is None:
        full.pop("duration")
    with pytest.raises(SilenceError) as caught:
        new_silence(full, now=1000.0)
    assert (field, reason) in [(e["field"], e["reason"]) for e in caught.value.errors]


RULES = """
rules:
  - name: lonjakan
    when: zscore.fired
    severity: warning
"""


def test_the_engine_mutes_silenced_alerts_and_tells_them_once_the_silence_ends():
    engine = RuleEngine(parse_rule_text(RULES, "s.yaml", load_catalog(), {"zscore"}))
    spike = {"scores": {"zscore": 6.0}, "fired": ["zscore"], "reasons": {}, "expected": None}
    tick = {"commodity": "cabai-rawit-merah", "market": "pasar-agung", "province": "32", "price": 90000.0}
    engine.set_silences([silence()])
    [fired] = engine.on_tick({**tick, "ts": 1000.0}, spike)
    assert fired["silenced_by"] == engine.silences[0]["id"] and fired["notify"] is False
    assert fired["routes"] == {"telegram": [], "topics": False, "receivers": []}
    assert engine.on_tick({**tick, "ts": 2000.0}, spike) == []
    [told] = engine.on_tick({**tick, "ts": 1000.0 + 7200}, spike)
    assert told["transition"] == "unmuted" and told["notify"] and told["routes"]["topics"] is True
    assert engine.on_tick({**tick, "ts": 9000.0}, spike) == []  # told once, not on every tick


def open_reads() -> Gate:
    """Reads public, as PASARWATCH_PUBLIC_READ's default; no rate or connection limit in play."""
    return Gate(True, 1000.0, 1000.0, 10, ())


@pytest.fixture
def api(tmp_path):
    server = start_redis(tmp_path)
    client = redis.Redis.from_url(server.url)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        app.state.redis = AsyncRedis.from_url(server.url)
        yield
        await app.state.redis.aclose()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gate = open_reads()
    app.state.settings = Settings.from_env()
    app.state.partitions = partitions.fix(client, 2)  # an alert is found firing in whichever it is
    operator = auth.issue(client, "person", "budi", "operator")
    with TestClient(app, headers={"authorization": f"Bearer {operator}"}) as http:
        yield http, client
    client.close()
    server.stop()


def test_silences_are_created_listed_expired_and_kept_for_audit(api):
    http, client = api
    now = time.time()
    created = http.post("/api/v1/silences", json={
        "matchers": ['commodity="cabai-rawit-merah"', {"name": "market", "value": "pasar-.*", "isRegex": True}],
        "starts_at": now - 1, "duration": "1h", "author": "budi", "comment": "operasi pasar"})
    assert created.status_code == 201, created.text
    s = created.json()["silence"]
    assert s["state"] == "active" and s["matchers"][1] == {"name": "market", "op": "=~", "value": "pasar-.*"}
    assert [x["id"] for x in active_silences(client, time.time())] == [s["id"]]
    assert is_silenced(ALERT, active_silences(client, time.time()), time.time())["id"] == s["id"]
    listed = http.get("/api/v1/silences", params={"state": "active"}).json()["silences"]
    assert [x["id"] for x in listed] == [s["id"]]

    deleted = http.delete(f"/api/v1/silences/{s['id']}", params={"by": "ani"})
    assert deleted.status_code == 200 and deleted.json()["silence"]["state"] == "expired"
    assert active_silences(client, time.time()) == []
    kept = http.get(f"/api/v1/silences/{s['id']}").json()["silence"]
    assert kept["state"] == "expired" and kept["author"] == "budi" and kept["expired_by"] == "ani"
    assert [x["id"] for x in http.get("/api/v1/silences", params={"state": "expired"}).json()["silences"]] == [s["id"]]
    assert client.hexists(SILENCES, s["id"])


def store_expired(client: redis.Redis, count: int, ended_at: float, prefix: str = "old") -> list[str]:
    """``count`` silences that ended at ``ended_at`` (and one second apart before it), as the API stores them."""
    ids = []
    with client.pipeline() as pipe:
        for n in range(count):
            s = {**silence(), "id": f"{prefix}-{n:05d}", "ends_at": ended_at - n, "created_at": ended_at - n - 3600}
            save_silence(pipe, s, [])
            ids.append(s["id"])
        pipe.execute()
    return ids


def test_expired_silences_are_kept_for_their_retention_and_then_forgotten(api):
    http, client = api
    now = time.time()
    days = Settings.from_env().silence_retention_days
    [too_old] = store_expired(client, 1, now - days * 86400 - 60)
    [recent] = store_expired(client, 1, now - 86400, prefix="recent")
    created = http.post("/api/v1/silences", json={"matchers": ['commodity="cabai-rawit-merah"'], "duration": "1h",
                                                  "author": "budi", "comment": "x"}).json()["silence"]
    assert not client.hexists(SILENCES, too_old) and client.zscore(SILENCE_ENDS, too_old) is None
    listed = {s["id"] for s in http.get("/api/v1/silences", params={"state": "expired"}).json()["silences"]}
    assert listed == {recent}
    assert http.get(f"/api/v1/silences/{too_old}").status_code == 404
    assert client.hexists(SILENCES, created["id"])


def test_at_most_the_newest_expired_silences_are_kept_however_many_are_made(api):
    http, client = api
    store_expired(client, EXPIRED_KEPT + 5, time.time() - 60)
    live = http.post("/api/v1/silences", json={"matchers": ['commodity="cabai-rawit-merah"'], "duration": "1h",
                                               "author": "budi", "comment": "x"}).json()["silence"]
    assert client.hlen(SILENCES) == EXPIRED_KEPT + 1  # the newest expired ones and the new live one
    assert not client.hexists(SILENCES, f"old-{EXPIRED_KEPT + 4:05d}")  # the oldest went first
    assert client.hexists(SILENCES, "old-00000")
    # Expiring the live one makes one more expired: one older goes.
    assert http.delete(f"/api/v1/silences/{live['id']}").status_code == 200
    assert client.hlen(SILENCES) == EXPIRED_KEPT and client.zcard(SILENCE_ENDS) == EXPIRED_KEPT
    assert client.hexists(SILENCES, live["id"])


def expired_count(client: redis.Redis) -> int:
    return client.zcount(SILENCE_ENDS, "-inf", time.time())


def test_silences_that_ran_out_between_changes_are_forgotten_at_the_next_change(api):
    """As many live silences as there can be run out with the newest expired already kept: the
    next change brings the count back to the bound (it forgets more than one batch of 100)."""
    http, client = api
    store_expired(client, EXPIRED_KEPT, time.time() - 3600)
    store_expired(client, MAX_LIVE, time.time() - 1, prefix="ran-out")
    http.post("/api/v1/silences", json={"matchers": ['commodity="cabai-rawit-merah"'], "duration": "1h",
                                        "author": "budi", "comment": "x"})
    assert expired_count(client) == EXPIRED_KEPT
    # The oldest went (store_expired numbers them newest first): MAX_LIVE of them, in one change.
    assert not client.hexists(SILENCES, f"old-{EXPIRED_KEPT - MAX_LIVE:05d}")
    assert client.hexists(SILENCES, f"old-{EXPIRED_KEPT - MAX_LIVE - 1:05d}") and client.hexists(SILENCES, "ran-out-00000")


def test_two_web_processes_expiring_silences_at_once_keep_the_bound(api):
    """Each change reads what to forget and writes in one step: two at once (two web processes)
    cannot both count the same expired silences and forget one too few."""
    http, client = api
    store_expired(client, EXPIRED_KEPT, time.time() - 60)
    live = [{**silence(), "id": f"live-{n}", "ends_at": time.time() + 3600} for n in range(4)]
    with client.pipeline() as pipe:
        for s in live:
            save_silence(pipe, s, [])
        pipe.execute()
    url = client.connection_pool.connection_kwargs
    settings = Settings.from_env()

    def web_process(connection: AsyncRedis) -> SimpleNamespace:  # what _save reads of a request
        return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(redis=connection, settings=settings)))

    async def expire_all_at_once() -> None:
        connections = [AsyncRedis(host=url["host"], port=url["port"], password=url.get("password")) for _ in live]
        try:
            await asyncio.gather(*(_save(web_process(connection), {**s, "ends_at": time.time()})
                                   for connection, s in zip(connections, live)))
        finally:
            for connection in connections:
                await connection.aclose()

    asyncio.run(expire_all_at_once())
    assert expired_count(client) == EXPIRED_KEPT
    assert all(client.hexists(SILENCES, s["id"]) for s in live)


def test_a_bad_silence_gets_422_with_every_error_and_stores_nothing(api):
    http, client = api
    response = http.post("/api/v1/silences", json={"matchers": ["severity=critical", "bad matcher"],
                                                    "ends_at": "tomorrow", "comment": "x"})
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"matchers", "ends_at", "author"}
    assert http.post("/api/v1/silences", content=b"{not json").status_code == 422
    assert http.get("/api/v1/silences", params={"state": "soon"}).status_code == 422
    assert http.get("/api/v1/silences/nope").status_code == 404
    assert client.hlen(SILENCES) == 0


def test_acknowledging_a_firing_alert_records_it_and_tells_dashboards(api):
    http, client = api
    key = "kenaikan-tajam/cabai-rawit-merah/pasar-agung"
    assert http.post(f"/api/v1/alerts/{key}/ack", json={"by": "budi"}).status_code == 404
    client.hset(partitions.of(client, "cabai-rawit-merah").firing, key, orjson.dumps({**ALERT, "key": key}))
    pubsub = client.pubsub()
    pubsub.subscribe("pw:events")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    response = http.post(f"/api/v1/alerts/{key}/ack", json={"by": "budi", "comment": "sudah dicek"})
    assert response.status_code == 200, response.text
    stored = orjson.loads(client.hget(ACKS, key))
    assert stored["by"] == "budi" and stored["comment"] == "sudah dicek"
    message = pubsub.get_message(timeout=5)
    assert orjson.loads(message["data"]) == {"type": "ack", "key": key, "by": "budi", "at": stored["at"]}
    pubsub.close()
    assert http.post(f"/api/v1/alerts/{key}/ack", json={"comment": "?"}).status_code == 422


def test_changing_silences_and_acks_needs_an_operators_token(api):
    http, client = api
    viewer = auth.issue(client, "person", "sari", "viewer")
    key = "kenaikan-tajam/cabai-rawit-merah/pasar-agung"
    client.hset(partitions.of(client, "cabai-rawit-merah").firing, key, orjson.dumps({**ALERT, "key": key}))
    body = {"matchers": ['commodity="cabai-rawit-merah"'], "duration": "2h", "author": "x", "comment": "y"}
    for headers, status in (({"authorization": ""}, 401), ({"authorization": f"Bearer {viewer}"}, 403)):
        assert http.post("/api/v1/silences", json=body, headers=headers).status_code == status
        assert http.post(f"/api/v1/alerts/{key}/ack", json={"by": "x"}, headers=headers).status_code == status
        assert http.delete("/api/v1/silences/any", headers=headers).status_code == status
    assert client.hlen(SILENCES) == 0 and client.hlen(ACKS) == 0
    assert http.get("/api/v1/silences", headers={"authorization": ""}).status_code == 200  # reads are public


def engine_status(client: redis.Redis) -> None:
    """What the engine publishes for the shipped rules (Rulebook.status), as it stores it."""
    book = Rulebook(Path(__file__).resolve().parent.parent / "rules", load_catalog(), set(DETECTOR_NAMES))
    assert book.status()["ok"], book.status()["errors"]
    client.set(keys.RULES_STATUS, orjson.dumps(book.status()))


def test_a_silence_naming_a_label_no_alert_carries_is_refused_with_the_known_labels(api):
    http, client = api
    engine_status(client)
    body = {"duration": "2h", "author": "budi", "comment": "panen"}
    response = http.post("/api/v1/silences", json={**body, "matchers": ['komoditas="bawang-merah"']})
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert (error["field"], error["reason"]) == ("matchers", "unknown_label")
    assert "did you mean 'commodity'?" in error["detail"]
    assert all(label in error["detail"] for label in ("commodity", "market", "province", "tier", "about"))
    wrong_value = http.post("/api/v1/silences", json={**body, "matchers": ['commodity="bawang-merahh"']})
    assert wrong_value.status_code == 422 and wrong_value.json()["errors"][0]["reason"] == "unknown_value"
    assert client.hlen(SILENCES) == 0
    for matchers in (['commodity="bawang-merah"'], ['tier="market"', 'market=~"pasar-.*"']):  # a rule's label
        assert http.post("/api/v1/silences", json={**body, "matchers": matchers}).status_code == 201


def test_a_silence_regex_re2_cannot_run_gets_422_naming_the_matchers_field(api):
    http, client = api
    response = http.post("/api/v1/silences", json={
        "matchers": [{"name": "market", "op": "=~", "value": "(?!pasar-agung).*"}],
        "duration": "2h", "author": "budi", "comment": "x"})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "matchers" and error["reason"] == "bad_matcher" and "lookaround" in error["detail"]
    assert client.hlen(SILENCES) == 0


def test_live_silences_are_bounded(api):
    http, client = api
    body = {"matchers": ['commodity="cabai-rawit-merah"'], "duration": "2h", "author": "budi", "comment": "x"}
    pipe = client.pipeline(transaction=False)
    for number in range(MAX_LIVE):
        save_silence(pipe, new_silence(body, time.time(), silence_id=f"s{number}"), [])
    pipe.execute()
    response = http.post("/api/v1/silences", json=body)
    assert response.status_code == 409 and response.json()["errors"][0]["reason"] == "too_many_silences"
    assert client.hlen(SILENCES) == MAX_LIVE
    assert http.delete("/api/v1/silences/s0").status_code == 200
    assert http.post("/api/v1/silences", json=body).status_code == 201
