"""``GET /metrics``: a real Prometheus exposition (HELP and TYPE for every metric), every refusal
counted by its reason, and the latency histograms other processes write rendered by the web
process. A real web process, engine and Redis (tests/system.py)."""
from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server import auth

from stores import histograms
from tests.system import System

HISTOGRAMS = {"pasarwatch_tick_commit_seconds", "pasarwatch_engine_batch_seconds",
              "pasarwatch_ws_publish_to_send_seconds", "pasarwatch_telegram_send_seconds"}
GOOD = {"commodity": "cabai-rawit-merah", "market": "pasar-kosambi", "province": "32", "price": 45000}


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    running = System(tmp_path_factory.mktemp("metrics"), env={"PASARWATCH_MAX_BODY_BYTES": "100000"}).start()
    yield running
    running.stop()


def scrape(system: System) -> dict:
    response = system.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def sample(families: dict, name: str, suffix: str = "", **labels: str) -> float:
    family = families[name]
    for s in family.samples:
        if s.name == name + suffix and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0.0


def refused(system: System, reason: str) -> float:
    return sample(scrape(system), "pasarwatch_refused", "_total", reason=reason)


def test_every_metric_has_help_and_a_type_and_the_latencies_are_histograms(system):
    families = scrape(system)
    for family in families.values():
        assert family.documentation, f"{family.name} has no HELP line"
        assert family.type in ("counter", "gauge", "histogram"), family
    assert {name for name, f in families.items() if f.type == "histogram"} == HISTOGRAMS
    # The names that were there before prometheus_client stay.
    assert {"pasarwatch_ticks_accepted", "pasarwatch_ticks_processed", "pasarwatch_ticks_pending",
            "pasarwatch_alert_events", "pasarwatch_alerts_firing", "pasarwatch_refused",
            "pasarwatch_rules_reload_failures", "pasarwatch_rules_ok", "pasarwatch_ws_clients",
            "pasarwatch_ws_messages_delivered"} <= set(families)


@pytest.mark.parametrize("reason, body, content_type", [pytest.param(*case, id=case[0]) for case in [
    ("not_positive", b'[{"commodity": "cabai-rawit-merah", "market": "pasar-kosambi", "province": "32", "price": -5}]',
     "application/json"),
    ("unknown_commodity", b'{"commodity": "durian", "market": "pasar-kosambi", "province": "32", "price": 5000}',
     "application/json"),
    ("invalid_json", b'{"commodity": ', "application/json"),
    ("body_too_large", b"[" + b" " * 200_000 + b"]", "application/json"),
]])
def test_each_refused_request_is_counted_by_its_reason(system, reason, body, content_type):
    before = refused(system, reason)
    response = system.http.post("/api/v1/ticks", content=body, headers={"content-type": content_type})
    assert response.status_code in (413, 422), response.text
    assert reason in {e["reason"] for e in response.json()["errors"]}
    assert refused(system, reason) == before + 1


def test_refusals_on_ws_ingest_and_bad_query_parameters_are_counted_too(system):
    from websockets.sync.client import connect

    before = scrape(system)
    with connect(f"{system.ws_url}/ws/ingest", additional_headers=system.auth_headers) as ws:
        ws.send('{"commodity": "cabai-rawit-merah", "market": "pasar-kosambi", "province": "32", "price": -5}')
        assert '"not_positive"' in ws.recv(timeout=10)
    assert system.http.get("/api/v1/alerts", params={"limit": "many"}).status_code == 422
    after = scrape(system)
    for reason in ("not_positive", "bad_query"):
        assert sample(after, "pasarwatch_refused", "_total", reason=reason) == \
            sample(before, "pasarwatch_refused", "_total", reason=reason) + 1


def test_a_batch_counts_each_reason_once_and_accepted_ticks_still_count_as_accepted(system):
    before = scrape(system)
    bad = [{**GOOD, "price": -1}, {**GOOD, "price": 0}, {**GOOD, "commodity": "durian"}, GOOD]
    response = system.post(bad)
    assert response.status_code == 422 and response.json()["accepted"] == 1
    after = scrape(system)
    for reason in ("not_positive", "unknown_commodity"):
        assert sample(after, "pasarwatch_refused", "_total", reason=reason) == \
            sample(before, "pasarwatch_refused", "_total", reason=reason) + 1
    assert sample(after, "pasarwatch_ticks_accepted", "_total") == sample(before, "pasarwatch_ticks_accepted", "_total") + 1


def test_a_device_reporting_for_another_market_is_counted_as_market_not_allowed(system):
    token = auth.issue(system.redis, "device", "hp-metrics", "device", ("pasar-agung",))
    before = refused(system, "market_not_allowed")
    response = httpx.post(f"{system.url}/api/v1/ticks", json=[GOOD], timeout=10,
                          headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 403, response.text
    assert refused(system, "market_not_allowed") == before + 1


def test_histograms_written_by_other_processes_are_served_with_their_buckets(system):
    # What the engine (stores.histograms.engine_commit) and the workers queue on their pipelines.
    pipe = system.redis.pipeline(transaction=False)
    histograms.record(pipe, histograms.TELEGRAM_SEND, [0.2, 0.3, 7.0])
    pipe.execute()
    families = scrape(system)
    name = "pasarwatch_telegram_send_seconds"
    before = {s.labels["le"]: s.value for s in families[name].samples if s.name == name + "_bucket"}
    pipe = system.redis.pipeline(transaction=False)
    histograms.record(pipe, histograms.TELEGRAM_SEND, [0.2, 0.3, 7.0])
    pipe.execute()
    families = scrape(system)
    buckets = {s.labels["le"]: s.value for s in families[name].samples if s.name == name + "_bucket"}
    assert buckets["0.1"] - before["0.1"] == 0
    assert buckets["0.25"] - before["0.25"] == 1
    assert buckets["0.5"] - before["0.5"] == 2
    assert buckets["10.0"] - before["10.0"] == 3
    assert buckets["+Inf"] == sample(families, name, "_count") >= 6
    assert sample(families, name, "_sum") == pytest.approx(2 * 7.5)


def histogram_count(families: dict, name: str) -> float:
    return sample(families, name, "_count")


def test_the_engine_times_each_tick_from_acceptance_to_commit_and_each_batch(system):
    from tests.test_pipeline import feed
    before = scrape(system)
    sent = feed(system, range(2))
    system.wait_processed(sent + int(sample(before, "pasarwatch_ticks_processed", "_total")))
    after = scrape(system)
    assert histogram_count(after, "pasarwatch_tick_commit_seconds") - \
        histogram_count(before, "pasarwatch_tick_commit_seconds") == sent
    batches = histogram_count(after, "pasarwatch_engine_batch_seconds") - \
        histogram_count(before, "pasarwatch_engine_batch_seconds")
    assert 1 <= batches <= sent


def test_prices_sent_to_a_websocket_client_are_timed_from_publish_to_send(system):
    import orjson
    from websockets.sync.client import connect
    before = histogram_count(scrape(system), "pasarwatch_ws_publish_to_send_seconds")
    with connect(f"{system.ws_url}/ws/prices") as ws:
        ws.send(orjson.dumps({"type": "subscribe", "commodity": ["bawang-merah"]}).decode())
        ws.recv(timeout=10)  # the snapshot: not a published message, not timed
        # Three series: the hub sends a series' newest price only, so each is sure to arrive.
        markets = ("pasar-kosambi", "pasar-anyar", "pasar-kanoman")
        ticks = [{**GOOD, "commodity": "bawang-merah", "market": market, "price": 30000.0} for market in markets]
        assert system.post(ticks).status_code == 202
        got = 0
        while got < 3:
            got += sum(1 for m in orjson.loads(ws.recv(timeout=10)) if m["type"] == "price")
    frames = histogram_count(scrape(system), "pasarwatch_ws_publish_to_send_seconds") - before
    assert 1 <= frames <= 3
