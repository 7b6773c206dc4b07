"""POST /api/v1/ticks against a real web process and Redis: every refusal is a named 422/413."""
from __future__ import annotations

import time

import orjson
import pytest

from tests import partitions
from tests.system import System

GOOD = {"commodity": "bawang-merah", "market": "pasar-kosambi", "province": "32", "price": 38000}


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    running = System(tmp_path_factory.mktemp("ingest")).start("web")
    yield running
    running.stop()


@pytest.mark.parametrize("change, field, reason", [
    ({"commodity": "cabe"}, "commodity", "unknown_commodity"),
    ({"province": "99"}, "province", "unknown_province"),
    ({"price": "NaN"}, "price", "not_a_number"),
    ({"price": -5}, "price", "not_positive"),
    ({"price": 0}, "price", "not_positive"),
    ({"price": "38000"}, "price", "not_a_number"),
    ({"price": True}, "price", "not_a_number"),
    ({"price": None}, "price", "required"),
    ({"ts": time.time() + 86400}, "ts", "future_timestamp"),
    ({"ts": "kemarin"}, "ts", "bad_timestamp"),
    ({"ts": "2024-04-01T08:00:00"}, "ts", "bad_timestamp"),
    ({"ts": 1711958400000}, "ts", "bad_timestamp"),
    ({"ts": "1900-01-01T00:00:00+07:00"}, "ts", "bad_timestamp"),  # before 2000: the engine cannot place it
    ({"ts": 0}, "ts", "bad_timestamp"),
    ({"commodity": "cabai " * 40}, "commodity", "too_long"),
    ({"market": "Pasar Kosambi!"}, "market", "bad_market"),
    ({"unit": "ons"}, "unit", "unit_mismatch"),
    ({"seq": 4}, "seq", "seq_without_source"),
    ({"colour": "red"}, "colour", "unknown_field"),
    ({"market": "pasar-agung"}, "province", "province_mismatch"),
])
def test_each_bad_input_gets_a_named_422(web, change, field, reason):
    if reason == "province_mismatch":
        change = {"market": "pasar-agung", "province": "31"}  # Pasar Agung is in Jawa Barat (32)
    response = web.post({**GOOD, **change})
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert {"index": 0, "field": field, "reason": reason} == {k: errors[0][k] for k in ("index", "field", "reason")}
    assert errors[0]["detail"]
    assert response.json()["accepted"] == 0


def test_nan_in_the_body_is_refused(web):
    response = web.http.post("/api/v1/ticks", content=b'{"commodity":"bawang-merah","market":"m","province":"32",'
                                                      b'"price":NaN}', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["reason"] == "invalid_json"
    assert web.http.get("/healthz").status_code == 200


def test_a_batch_keeps_its_good_ticks_unless_all_or_nothing(web):
    batch = [GOOD, {**GOOD, "price": -1}, {**GOOD, "market": "pasar-kranji", "price": 39000}]
    response = web.post(batch)
    assert response.status_code == 422
    body = response.json()
    assert body["accepted"] == 2 and len(body["ids"]) == 2
    assert [e["index"] for e in body["errors"]] == [1]
    for tick_id in body["ids"]:
        assert web.redis.xrange(partitions.of(web.redis, GOOD["commodity"]).ticks, tick_id, tick_id)
    atomic = web.post(batch, all_or_nothing="true")
    assert atomic.status_code == 422 and atomic.json()["accepted"] == 0


def test_ndjson_with_a_broken_line(web):
    lines = [orjson.dumps(GOOD), b"{broken", orjson.dumps({**GOOD, "price": 38500})]
    response = web.http.post("/api/v1/ticks", content=b"\n".join(lines),
                             headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 422
    body = response.json()
    assert body["accepted"] == 2 and body["errors"][0]["index"] == 1
    assert body["errors"][0]["reason"] == "invalid_json"


def test_a_repeated_source_and_seq_is_dropped_as_duplicate(web):
    tick = {**GOOD, "source": "dev-7", "seq": 41}
    first = web.post([tick, {**tick, "seq": 42}])
    assert first.status_code == 202 and first.json()["accepted"] == 2
    again = web.post([tick, {**tick, "seq": 43}])
    assert again.status_code == 202
    assert again.json()["accepted"] == 1 and again.json()["duplicates"] == [0]


def test_oversized_body_gets_413(web):
    big = [GOOD] * 60000  # ~5 MB, above the 4 MiB default
    response = web.http.post("/api/v1/ticks", content=orjson.dumps(big), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["errors"][0]["reason"] == "body_too_large"


def test_too_many_ticks_gets_413(web):
    response = web.post([GOOD] * 10001)
    assert response.status_code == 413
    assert response.json()["errors"][0]["reason"] == "batch_too_large"


def test_empty_and_non_tick_bodies(web):
    assert web.http.post("/api/v1/ticks", content=b"").json()["errors"][0]["reason"] == "empty_body"
    assert web.post(42).json()["errors"][0]["reason"] == "bad_type"
    assert web.post([1]).json()["errors"][0] == {"index": 0, "field": "tick", "reason": "bad_type",
                                                  "detail": "a tick must be a JSON object (got int)"}


def test_read_api_query_errors_name_the_field(web):
    response = web.http.get("/api/v1/alerts", params={"limit": "many"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "limit"
    assert web.http.get("/api/v1/alerts", params={"since": "yesterday"}).json()["errors"][0]["field"] == "since"


def test_the_catalog_lists_38_provinces(web):
    catalog = web.http.get("/api/v1/catalog").json()
    assert len(catalog["provinces"]) == 38
    assert any(c["id"] == "cabai-rawit-merah" for c in catalog["commodities"])


def test_metrics_count_accepted_and_refused_ticks(web):
    before = web.http.get("/metrics").text
    assert web.post([GOOD, GOOD]).status_code == 202
    web.http.post("/api/v1/ticks", content=b"[]", headers={"authorization": "Bearer nope"})
    text = web.http.get("/metrics").text

    def value(body: str, line_start: str) -> int:
        return int(float(next((line.split()[-1] for line in body.splitlines() if line.startswith(line_start)), 0)))

    assert value(text, "pasarwatch_ticks_accepted_total") == value(before, "pasarwatch_ticks_accepted_total") + 2
    assert value(text, 'pasarwatch_refused_total{reason="invalid_token"}') >= 1
