"""Work one request can make: input bounded before matching, matching bounded, the event loop
kept serving while a big request is handled, and anonymous readers kept from the devices' Redis
connections. Real web process, real Redis, the fake Bot API, all on 127.0.0.1."""
from __future__ import annotations

import asyncio
import threading
import time
from difflib import SequenceMatcher
from collections.abc import Callable

import httpx
import orjson
import pytest

import base.names as names_module
from base.catalog import load_catalog
from server import auth
from server.access import AddressBuckets
from server.telegram_bot import SECRET_HEADER
from server.ticks import validate_ticks
from testkit.fakebot import FakeTelegram, message_update
from tests.system import System
from tests import partitions

CATALOG = load_catalog()
NOW = 1_719_800_000.0
TICK = {"commodity": "bawang-merah", "market": "pasar-kosambi", "province": "32", "price": 38000}
SECRET = "edge-secret_token"
READ_BURST = 10
READ_RATE = 2.0
# A cheap request answered while a heavy one is in the works must not wait for it: generous,
# since the machine is shared, but far below the seconds a blocked event loop costs.
LOOP_LATENCY = 1.0


class CountingMatcher(SequenceMatcher):
    """difflib's matcher, counting how many the catalog makes and how many full comparisons."""

    made = 0
    compared = 0

    def __init__(self, *args, **kwargs):
        type(self).made += 1
        super().__init__(*args, **kwargs)

    def ratio(self) -> float:
        type(self).compared += 1
        return super().ratio()


@pytest.fixture
def counting(monkeypatch):
    CountingMatcher.made = CountingMatcher.compared = 0
    monkeypatch.setattr(names_module, "SequenceMatcher", CountingMatcher)
    return CountingMatcher


# -- timestamps ---------------------------------------------------------------------------------

@pytest.mark.parametrize("ts", ["1900-01-01T00:00:00+07:00", "1999-12-31T23:59:59Z", 0, -1, 946_684_799,
                                "2070-01-01T00:00:00Z", "2077-11-17T00:00:00+07:00", 3_200_000_000])
def test_timestamps_before_2000_or_from_2070_are_refused_as_text_and_as_number(ts):
    # ``now`` late enough that the future check cannot be what refuses 2070.
    result = validate_ticks([{**TICK, "ts": ts}], CATALOG, now=4_000_000_000.0, max_age=float("inf"))
    assert result.ticks == []
    [error] = result.errors
    assert (error["field"], error["reason"]) == ("ts", "bad_timestamp")
    assert "2000-01-01" in error["detail"] and "2070-01-01" in error["detail"]


@pytest.mark.parametrize("ts, seconds", [("2000-01-01T00:00:00Z", 946_684_800.0), (946_684_800, 946_684_800.0),
                                         ("2000-01-01T07:00:00+07:00", 946_684_800.0),
                                         ("2069-12-31T23:59:59+00:00", 3_155_759_999.0)])
def test_the_edges_of_the_range_are_accepted(ts, seconds):
    # No age limit here: this is the fixed range, whatever PASARWATCH_MAX_TICK_AGE_DAYS says.
    result = validate_ticks([{**TICK, "ts": ts}], CATALOG, now=4_000_000_000.0, max_age=float("inf"))
    assert result.errors == [] and result.ticks[0][1]["ts"] == seconds


# -- text fields: bounded before anything matches them ---------------------------------------------

def test_a_200k_character_commodity_is_refused_without_fuzzy_matching(counting):
    huge = "cabai rawit " * 20_000
    started = time.monotonic()
    result = validate_ticks([{**TICK, "commodity": huge}, {**TICK, "province": huge}, {**TICK, "unit": huge},
                             {**TICK, "ts": "2024-" + huge}], CATALOG, NOW)
    assert time.monotonic() - started < 0.5
    assert counting.made == 0
    assert [(e["field"], e["reason"]) for e in result.errors] == [
        ("commodity", "too_long"), ("province", "too_long"), ("unit", "too_long"), ("ts", "bad_timestamp")]
    assert all(len(e["detail"]) < 200 for e in result.errors)  # the text is not echoed back
    assert CATALOG.suggest_commodity(huge) == [] and CATALOG.suggest_province(huge) == []
    assert counting.made == 0


def test_unknown_field_names_are_reported_in_a_bounded_detail():
    tick = {**TICK, **{f"{'x' * 1000}{i}": 1 for i in range(1000)}}
    [error] = validate_ticks([tick], CATALOG, NOW).errors
    assert error["reason"] == "unknown_field" and "and 995 more" in error["detail"]
    assert len(error["detail"]) < 500 and len(error["field"]) <= 64


def test_a_batch_of_unknown_names_makes_a_bounded_number_of_fuzzy_matches(counting):
    batch = [{**TICK, "commodity": f"komoditas-{i:04d}", "province": f"provinsi {i:04d}"} for i in range(500)]
    result = validate_ticks(batch, CATALOG, NOW)
    assert len(result.errors) == 1000
    assert {e["reason"] for e in result.errors} == {"unknown_commodity", "unknown_province"}
    assert counting.made <= 50  # one matcher per suggestion, and suggestions per batch are capped
    assert counting.compared <= 50 * 400  # each compares with a fixed list of names


def test_a_repeated_unknown_name_is_matched_once_per_batch(counting):
    result = validate_ticks([{**TICK, "commodity": "bawang merh"}] * 300, CATALOG, NOW)
    assert counting.made == 1
    assert all("did you mean bawang-merah?" in e["detail"] for e in result.errors)


def test_suggestion_work_does_not_grow_with_the_words_typed(counting):
    CATALOG.suggest_commodity("cabe rawt")
    short = counting.compared
    counting.compared = 0
    CATALOG.suggest_commodity("cabe rawt " * 24)  # 240 characters: longer than any name
    assert counting.compared == 0
    assert 0 < short < 400


# -- the web process: heavy requests, a free event loop ------------------------------------------------

@pytest.fixture(scope="module")
def fake():
    with FakeTelegram() as running:
        yield running


@pytest.fixture(scope="module")
def web(tmp_path_factory, fake):
    running = System(tmp_path_factory.mktemp("edges"), env={
        "TELEGRAM_BOT_TOKEN": "123:TEST", "TELEGRAM_BASE_URL": fake.base_url, "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_TIMEOUT": "5", "PASARWATCH_READ_RATE": str(READ_RATE), "PASARWATCH_READ_BURST": str(READ_BURST),
    }).start("web")
    yield running
    running.stop()


def while_serving(web: System, heavy: Callable[[httpx.Client], httpx.Response]) -> tuple[httpx.Response, list[float]]:
    """Send ``heavy`` from a thread; meanwhile time GET /healthz, again and again, until it is
    answered. Returns its response and the probes' latencies (seconds)."""
    outcome: dict[str, object] = {}

    def run() -> None:
        with httpx.Client(base_url=web.url, headers=web.auth_headers, timeout=60) as client:
            try:
                outcome["response"] = heavy(client)
            except httpx.HTTPError as exc:
                outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    latencies: list[float] = []
    deadline = time.monotonic() + 90
    with httpx.Client(base_url=web.url, timeout=60) as probe:
        while (thread.is_alive() or not latencies) and time.monotonic() < deadline:
            started = time.monotonic()
            assert probe.get("/healthz").status_code == 200
            latencies.append(time.monotonic() - started)
    thread.join(timeout=60)
    assert "response" in outcome, outcome.get("error")
    return outcome["response"], latencies  # type: ignore[return-value]


def test_a_poison_timestamp_is_a_named_422(web):
    before = partitions.length(web.redis, "ticks")
    response = web.post({**TICK, "ts": "1900-01-01T00:00:00+07:00"})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["index"], error["field"], error["reason"]) == (0, "ts", "bad_timestamp")
    assert "2000-01-01" in error["detail"]
    assert partitions.length(web.redis, "ticks") == before


def test_a_200k_character_commodity_is_refused_at_once_and_the_loop_keeps_serving(web):
    body = orjson.dumps({**TICK, "commodity": "x" * 200_000})
    started = time.monotonic()
    response, latencies = while_serving(web, lambda client: client.post(
        "/api/v1/ticks", content=body, headers={"content-type": "application/json"}))
    assert time.monotonic() - started < 10
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["field"], error["reason"]) == ("commodity", "too_long")
    assert len(response.content) < 1000
    assert max(latencies) < LOOP_LATENCY, latencies


def test_10000_unknown_names_are_refused_quickly_and_the_loop_keeps_serving(web):
    batch = [{**TICK, "commodity": f"komoditas-baru-{i:05d}"} for i in range(10_000)]
    body = orjson.dumps(batch)
    started = time.monotonic()
    response, latencies = while_serving(web, lambda client: client.post(
        "/api/v1/ticks", content=body, headers={"content-type": "application/json"}))
    assert time.monotonic() - started < 15
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert len(errors) == 10_000 and {e["reason"] for e in errors} == {"unknown_commodity"}
    assert max(latencies) < LOOP_LATENCY, latencies


def test_a_4096_character_bot_command_is_answered_at_once_and_the_loop_keeps_serving(web, fake):
    chat = 5150
    text = ("/langganan " + "cabe rawit jabar " * 300)[:4096]
    update = orjson.dumps({**message_update(chat, text), "update_id": 1})
    response, latencies = while_serving(web, lambda client: client.post(
        "/telegram/webhook", content=update, headers={SECRET_HEADER: SECRET}))
    assert response.status_code == 200
    [reply] = fake.messages(chat)
    assert "Terlalu panjang" in reply["text"]
    assert max(latencies) < LOOP_LATENCY, latencies
    subscribed = orjson.dumps({**message_update(chat, "/langganan cabe rawit jabar"), "update_id": 2})
    assert httpx.post(f"{web.url}/telegram/webhook", content=subscribed, headers={SECRET_HEADER: SECRET}).status_code == 200
    assert web.redis.smembers(f"pw:sub:chat:{chat}") == {b"cabai-rawit-merah:32"}


# -- anonymous readers and the devices' Redis connections ------------------------------------------

async def _crowd(url: str, reads: int, device_token: str) -> tuple[list[httpx.Response], httpx.Response]:
    """``reads`` anonymous GET /api/v1/series at once, and one device push among them."""
    limits = httpx.Limits(max_connections=reads + 1, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        push = client.post("/api/v1/ticks", content=orjson.dumps(TICK),
                           headers={"authorization": f"Bearer {device_token}"})
        *answers, pushed = await asyncio.gather(*(client.get("/api/v1/series") for _ in range(reads)), push)
    return answers, pushed


def test_anonymous_readers_over_their_rate_get_429_while_a_device_still_pushes(web):
    device = auth.issue(web.redis, "device", "hp-edge", "device", ("*",))
    started = time.monotonic()
    answers, pushed = asyncio.run(_crowd(web.url, 100, device))
    elapsed = time.monotonic() - started
    assert pushed.status_code == 202, pushed.text
    served = [a for a in answers if a.status_code == 200]
    limited = [a for a in answers if a.status_code == 429]
    assert len(served) + len(limited) == 100
    assert 1 <= len(served) <= READ_BURST + READ_RATE * elapsed + 1
    [error] = limited[0].json()["errors"]
    assert (error["field"], error["reason"]) == ("address", "read_rate_limited")
    assert int(limited[0].headers["retry-after"]) >= 1
    # A reader with a token is not counted against the address.
    assert web.http.get("/api/v1/series").status_code == 200
    assert int(web.redis.hget("pw:stats:refused", "read_rate_limited")) == len(limited)


def test_readers_beyond_the_redis_pool_wait_for_a_connection_instead_of_503(tmp_path):
    running = System(tmp_path, env={"PASARWATCH_READ_RATE": "100000", "PASARWATCH_READ_BURST": "100000",
                                    "PASARWATCH_REDIS_POOL": "10", "PASARWATCH_REDIS_POOL_TIMEOUT": "20"}).start("web")
    try:
        device = auth.issue(running.redis, "device", "hp-pool", "device", ("*",))
        # Redis holds every command for 3 s: each request in flight keeps its connection, so
        # 150 at once need more connections than the pool (or the default pool of 100) has.
        running.redis.client_pause(3000, all=True)
        answers, pushed = asyncio.run(_crowd(running.url, 150, device))
        assert pushed.status_code == 202, pushed.text
        assert [a.status_code for a in answers if a.status_code != 200] == []
    finally:
        running.stop()


def test_address_buckets_keep_a_bounded_number_of_addresses():
    buckets = AddressBuckets(rate=1.0, burst=2.0, capacity=3)
    now = time.monotonic() + 1  # a clock value after the buckets were made
    assert [buckets.take("10.0.0.1", now) for _ in range(3)] == [0.0, 0.0, 1.0]
    for n in range(2, 100):
        buckets.take(f"10.0.0.{n}", now)
    assert len(buckets.buckets) == 3 and "10.0.0.1" not in buckets.buckets
    buckets.take("10.0.0.98", now)  # seen again: kept when a new address comes
    buckets.take("10.0.0.200", now)
    assert list(buckets.buckets) == ["10.0.0.99", "10.0.0.98", "10.0.0.200"]
