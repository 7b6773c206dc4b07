"""Bad input: the tick parser and the rule loader answer every input with their own error, and
the WebSockets survive malformed, huge, binary and flooding clients while serving the others.

Hypothesis runs derandomized (the same examples every run) so a failure reproduces in CI.
"""
from __future__ import annotations

import itertools
import math
import re
import threading

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from base.catalog import load_catalog
from rules.engine import RuleEngine
from rules.loader import RuleSet, RuleSetError, parse_rule_text
from server import auth
from base.config import PROJECT_ROOT
from detectors.stack import DETECTOR_NAMES
from server.ticks import KNOWN_FIELDS, BodyError, parse_body, validate_ticks
from tests.system import System, wait_for

CATALOG = load_catalog()
NOW = 1_719_800_000.0
SKEW = 300.0
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
MARKET_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
SOURCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")
REASON = re.compile(r"[a-z][a-z_]*")

# -- ticks ----------------------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
           | st.sampled_from(["", "32", "kg", "2024-04-01T08:00:00+07:00", "2024-04-01T08:00:00", "pasar-kosambi\n",
                              "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "\x00", "²", "1e400"]))
json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
valid_fields = {
    "commodity": st.sampled_from(sorted(CATALOG.commodities)),
    "market": st.sampled_from(sorted(CATALOG.markets) + ["pasar-baru.2", "x"]),
    "province": st.sampled_from(sorted(CATALOG.provinces)),
    "price": st.floats(min_value=1, max_value=1e9) | st.integers(min_value=1, max_value=10**9),
    "ts": st.floats(min_value=0, max_value=NOW) | st.sampled_from(["2024-04-01T08:00:00+07:00"]),
    "unit": st.sampled_from(["kg", "liter", "butir"]),
    "source": st.from_regex(SOURCE_ID, fullmatch=True),
    "seq": st.integers(min_value=0, max_value=2**63),
}


@st.composite
def near_ticks(draw) -> dict:
    """A tick whose fields are each valid, absent or replaced by any JSON-like value."""
    tick = {}
    for name, valid in valid_fields.items():
        choice = draw(st.sampled_from(["valid", "valid", "absent", "other"]))
        if choice == "valid":
            tick[name] = draw(valid)
        elif choice == "other":
            tick[name] = draw(json_like)
    tick.update(draw(st.dictionaries(st.text(max_size=8), json_like, max_size=2)))
    return tick


items = st.lists(near_ticks() | json_like, max_size=6)


def assert_well_formed(error: dict, size: int) -> None:
    assert set(error) == {"index", "field", "reason", "detail"}
    assert isinstance(error["index"], int) and 0 <= error["index"] < size
    assert isinstance(error["field"], str) and isinstance(error["detail"], str) and error["detail"]
    assert REASON.fullmatch(error["reason"]), error
    assert error["field"] in KNOWN_FIELDS | {"tick", "body"} or error["reason"] == "unknown_field", error


def assert_normalised(tick: dict) -> None:
    commodity = CATALOG.commodities[tick["commodity"]]
    assert MARKET_ID.fullmatch(tick["market"]), tick["market"]
    assert tick["province"] in CATALOG.provinces
    assert isinstance(tick["price"], float) and math.isfinite(tick["price"]) and 0 < tick["price"] < 1e12
    assert isinstance(tick["ts"], float) and 0 <= tick["ts"] <= NOW + SKEW
    assert tick["unit"] == commodity.unit
    assert tick["source"] is None or SOURCE_ID.fullmatch(tick["source"]), tick["source"]
    assert tick["seq"] is None or (type(tick["seq"]) is int and tick["seq"] >= 0 and tick["source"])


@FUZZ
@given(items)
@example([{"commodity": "bawang-merah", "market": "pasar-kosambi\n", "province": "32", "price": 38000}])
@example([{"commodity": "bawang-merah", "market": "pasar-kosambi", "province": "32", "price": 10**400}])
@example([{"commodity": "bawang-merah", "market": "pasar-kosambi", "province": "32", "price": 1, "ts": 10**400}])
def test_validation_reports_every_problem_and_accepts_only_normal_ticks(batch):
    result = validate_ticks(batch, CATALOG, NOW, SKEW)
    refused = {error["index"] for error in result.errors}
    accepted = [index for index, _ in result.ticks]
    assert sorted(set(accepted) | refused) == list(range(len(batch))) and not refused & set(accepted)
    for error in result.errors:
        assert_well_formed(error, len(batch))
    for _, tick in result.ticks:
        assert_normalised(tick)


content_types = st.sampled_from(["", "application/json", "application/x-ndjson", "application/jsonlines",
                                 "text/plain", "application/json-seq"]) | st.text(max_size=20)


def encoded(value) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # ints beyond 64 bits: send their text, which is not JSON
        return repr(value).encode()


bodies = (st.binary(max_size=200)
          | items.map(encoded)
          | near_ticks().map(encoded)
          | st.lists(near_ticks().map(encoded) | st.binary(max_size=20), max_size=5).map(b"\n".join))


@FUZZ
@given(bodies, content_types)
@example(b"[" * 5000 + b"]" * 5000, "application/json")
@example(b"\xff\xfe{}", "")
@example(b"  \n\t ", "application/x-ndjson")
def test_any_body_parses_to_items_or_a_body_error(body, content_type):
    try:
        parsed = parse_body(body, content_type)
    except BodyError as exc:
        error = exc.as_error()
        assert error["index"] is None and error["field"] == "body" and REASON.fullmatch(error["reason"])
        return
    assert isinstance(parsed, list)
    result = validate_ticks(parsed, CATALOG, NOW, SKEW)
    for error in result.errors:
        assert_well_formed(error, len(parsed))
    for _, tick in result.ticks:
        assert_normalised(tick)


# -- rule files -----------------------------------------------------------------------------------

VOCABULARY = sorted({
    "defaults", "rules", "receivers", "time_windows", "route", "inhibit", "name", "summary", "description",
    "kind", "scope", "when", "severity", "for", "keep_firing_for", "routes", "value", "levels", "labels",
    "message", "level", "enter", "exit", "telegram", "topics", "receiver", "matchers", "continue", "group_by",
    "weekdays", "times", "days_of_month", "months", "timezone", "commodity", "province", "market", "firing",
    "resolved", "source", "target", "equal", "active_time_windows", "mute_time_windows", "repeat_interval"})
WORDS = ["price", "change", "quarantined", "zscore.fired", "crossmarket.score", "iqr", "stale", "age", "nosuch",
         "and", "or", "not", "<", ">=", "==", "+", "-", "*", "/", "(", ")", "abs(", "min(", ",", "1", "0.5",
         "1" + "0" * 30, "true", "__import__", "lambda", "[0]", ".x"]
rule_scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
                | st.sampled_from(["warning", "critical", "info", "tick", "health", "2d", "90s", "1e999w",
                                   "senin:jumat", "07:00-17:00", "24:00-25:99", "²", "-1", "1:7", "januari",
                                   "cabai-*", "32", "*", "severity=critical", "rule=~harga.*", "a=~(", "{{ price }}",
                                   "{% for %}", "Asia/Jakarta", "Mars/Olympus"])
                | st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join))
rule_values = st.recursive(rule_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(VOCABULARY) | st.text(max_size=6) | st.integers(), inner, max_size=5), max_leaves=25)
rule_documents = st.dictionaries(st.sampled_from(VOCABULARY) | st.integers(), rule_values, max_size=5)
GOOD_RULES = yaml.safe_load((PROJECT_ROOT / "rules" / "prices.yaml").read_text())


@st.composite
def mutated_rules(draw) -> dict:
    """The shipped rule file with one value somewhere replaced."""
    document = orjson.loads(orjson.dumps(GOOD_RULES))
    node = document
    while keys := list(node) if isinstance(node, dict) else list(range(len(node))):
        key = draw(st.sampled_from(keys))
        if not isinstance(node[key], (dict, list)) or draw(st.booleans()):
            node[key] = draw(rule_values)
            break
        node = node[key]
    return document


def dumped(document) -> str:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


rule_texts = (st.text(max_size=300) | rule_documents.map(dumped) | mutated_rules().map(dumped)
              | st.lists(st.sampled_from(WORDS), max_size=40).map(lambda words: "rules:\n  - name: x\n    when: "
                                                                   + " ".join(words) + "\n"))
DEEP = ["rules:\n  - name: x\n    when: " + "-" * 5000 + "price\n",
        "rules:\n  - name: x\n    when: " + "+".join(["price"] * 3000) + " > 1\n",
        "rules:\n  - name: x\n    when: " + "(" * 150 + "price" + ")" * 150 + "\n",
        "[" * 5000 + "]" * 5000,
        "rules:\n  - name: x\n    when: price\n    for: 1" + "0" * 5000 + "\n",
        "rules:\n  - name: x\n    when: \"price\\0\"\n",
        "rules:\n  - name: x\n    when: price\n    for: 2024-02-30\n",
        "rules:\n  - name: x\n    when: " + "-" * 960 + "price > 1\n",
        "rules:\n  - name: x\n    when: price > 1" + "0" * 400 + " / 3\n"]


@FUZZ
@given(rule_texts)
@example(DEEP[0])
@example(DEEP[1])
@example(DEEP[2])
@example(DEEP[3])
@example(DEEP[4])
@example(DEEP[5])
@example(DEEP[6])
@example(DEEP[7])
@example(DEEP[8])
def test_any_rule_text_loads_or_names_file_line_and_reason(text):
    try:
        ruleset = parse_rule_text(text, "fuzz.yaml", CATALOG, set(DETECTOR_NAMES))
    except RuleSetError as exc:
        assert exc.errors
        lines = text.count("\n") + 2
        for error in exc.errors:
            assert error.file == "fuzz.yaml" and isinstance(error.line, int) and 0 <= error.line <= lines, error
            assert isinstance(error.reason, str) and error.reason.strip()
            assert str(error) == f"fuzz.yaml:{error.line}: {error.reason}"
        return
    assert isinstance(ruleset, RuleSet)
    exercise(ruleset)


def exercise(ruleset: RuleSet) -> None:
    """A set that loads must also evaluate: the engine runs it on every tick and health change."""
    engine = RuleEngine(ruleset)
    tick = {"id": "1-0", "commodity": "cabai-rawit-merah", "market": "pasar-kosambi", "province": "32",
            "price": 450000.0, "ts": NOW, "unit": "kg", "source": "hp-1", "seq": 1, "received": NOW}
    verdict = {"scores": {"zscore": 9.0, "iqr": 4.0, "crossmarket": 7.5, "ceiling": 1.2}, "reasons": {},
               "fired": ["crossmarket", "zscore"], "quarantined": True,
               "expected": {"level": 45000.0, "lo": 40000.0, "hi": 50000.0}}
    calm = {"scores": {}, "fired": [], "reasons": {}, "quarantined": False, "expected": None}
    for day, judged in enumerate([verdict, verdict, verdict, calm, calm, calm]):
        engine.on_batch([{**tick, "ts": NOW + day * 86400}], [judged])
        for state in ("stale", "ok"):
            engine.on_health({"type": "health", "commodity": tick["commodity"], "market": tick["market"],
                              "province": "32", "state": state, "age": 7 * 86400.0, "price": 45000.0,
                              "ts": NOW + day * 86400 + 1})


# -- WebSockets -----------------------------------------------------------------------------------

TICK = {"commodity": "bawang-merah", "market": "pasar-kosambi", "province": "32", "price": 38000}


MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    running = System(tmp_path_factory.mktemp("fuzz"), env={"PASARWATCH_DEVICE_RATE": "200",
                                                           "PASARWATCH_DEVICE_BURST": "400",
                                                           "PASARWATCH_MAX_BATCH": "50",
                                                           "PASARWATCH_MAX_BODY_BYTES": str(MAX_BODY)}).start()
    yield running
    running.stop()


def device(system: System, name: str) -> dict:
    return {"authorization": f"Bearer {auth.issue(system.redis, 'device', name, 'device', ('*',))}"}


def frames(ws, timeout: float = 10.0) -> list[dict]:
    return orjson.loads(ws.recv(timeout=timeout))


def closed_with(ws, timeout: float = 10.0) -> int | None:
    """The close code the server sent (None when it dropped the connection without one)."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=timeout)
    return closed.value.rcvd.code if closed.value.rcvd else None


PRICES = itertools.count(30000)
# What /ws/prices may push besides the reply to a client's own message.
BROADCAST = {"price", "alert", "health", "rules", "resync"}


def still_serving(system: System) -> None:
    """Another client still gets a fresh snapshot and live prices, and HTTP still answers."""
    with connect(f"{system.ws_url}/ws/prices") as ws:
        ws.send('{"type": "subscribe", "market": ["pasar-anyar"]}')
        assert reply_to(ws)["type"] == "snapshot"
        price = next(PRICES)
        assert system.post({**TICK, "market": "pasar-anyar", "price": price}).status_code == 202
        wait_for(lambda: any(m.get("price") == price for m in frames(ws)), 15, "a live price")
    assert system.http.get("/healthz").status_code == 200
    assert system.processes["web"].poll() is None


def reply_to(ws) -> dict:
    """The snapshot or error answering the client's last message (broadcasts may come first)."""
    while True:
        messages = [m for m in frames(ws) if m["type"] not in BROADCAST]
        if messages:
            assert len(messages) == 1, messages
            return messages[0]


ws_messages = (st.text(max_size=200) | st.binary(max_size=50).map(lambda b: b.decode("latin-1"))
               | json_like.map(lambda value: encoded(value).decode())
               | st.dictionaries(st.sampled_from(["commodity", "province", "market", "since"]), json_like,
                                 max_size=3).map(lambda fields: encoded({"type": "subscribe", **fields}).decode()))


def test_prices_socket_answers_every_malformed_message_and_stays_open(system):
    with connect(f"{system.ws_url}/ws/prices") as ws:

        @settings(max_examples=150, deadline=None, derandomize=True, database=None)
        @given(ws_messages)
        @example("{nope")
        @example('{"type": "subscribe", "since": "1-18446744073709551616"}')
        @example('{"type": "subscribe", "since": "²"}')
        @example('{"type": "subscribe", "commodity": [1, 2]}')
        @example("[" * 2000 + "]" * 2000)
        @example("x" * (100 * 1024))
        def answered(message):
            ws.send(message)
            reply = reply_to(ws)
            assert reply["type"] in ("snapshot", "error"), reply
            if reply["type"] == "error":
                assert reply["reason"] and "unavailable" not in reply["reason"], reply

        answered()
    still_serving(system)


def test_ingest_socket_acks_every_malformed_message_and_stays_open(system):
    with connect(f"{system.ws_url}/ws/ingest", additional_headers=device(system, "fuzz-ingest")) as ws:

        @settings(max_examples=150, deadline=None, derandomize=True, database=None)
        @given(ws_messages | items.map(lambda batch: encoded(batch).decode(errors="replace")))
        @example('{"ref": [1, {"a": null}], "ticks": 5}')
        @example(orjson.dumps({"ref": "big", "ticks": [TICK] * 51}).decode())
        def acked(message):
            ws.send(message)
            ack = orjson.loads(ws.recv(timeout=10))
            assert ack["type"] == "ack" and ack["status"] in (202, 403, 413, 422, 429), ack
            for error in ack.get("errors", []):
                assert set(error) == {"index", "field", "reason", "detail"} and REASON.fullmatch(error["reason"])

        acked()
    still_serving(system)


def test_a_batch_above_the_limit_is_413_even_beyond_the_burst(system):
    # Retrying cannot help a batch larger than the burst: it must hear "too large", not "retry".
    headers = device(system, "fuzz-big")
    http = system.http.post("/api/v1/ticks", content=orjson.dumps([TICK] * 401),
                            headers={**headers, "content-type": "application/json"})
    assert http.status_code == 413 and http.json()["errors"][0]["reason"] == "batch_too_large"
    with connect(f"{system.ws_url}/ws/ingest", additional_headers=headers) as ws:
        ws.send(orjson.dumps([TICK] * 401).decode())
        ack = orjson.loads(ws.recv(timeout=10))
        assert ack["status"] == 413 and ack["errors"][0]["reason"] == "batch_too_large"


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("size", [MAX_BODY + 1, 4 * MAX_BODY, 64 * MAX_BODY])
def test_a_body_above_the_limit_is_413_however_it_is_sent(system, size, streamed):
    body = orjson.dumps([TICK]).ljust(size)  # valid JSON padded with spaces: only its size is wrong
    content = (body[i:i + 16384] for i in range(0, size, 16384)) if streamed else body
    response = system.http.post("/api/v1/ticks", content=content,
                                headers={**device(system, "fuzz-body"), "content-type": "application/json"})
    assert response.status_code == 413 and response.json()["errors"][0]["reason"] == "body_too_large"
    assert system.http.post("/api/v1/ticks", content=orjson.dumps([TICK]).ljust(MAX_BODY)).status_code == 202


def headers_for(system: System, path: str) -> dict:
    # A device may push, not read: /ws/prices is public in this run.
    return device(system, "fuzz-frames") if path == "/ws/ingest" else {}


@pytest.mark.parametrize("path", ["/ws/prices", "/ws/ingest"])
def test_binary_frames_are_refused_with_1003(system, path):
    logged = len(system.log("web"))
    with connect(f"{system.ws_url}{path}", additional_headers=headers_for(system, path)) as ws:
        ws.send(b'{"type": "subscribe"}')
        assert closed_with(ws) == 1003
    assert "Exception in ASGI application" not in system.log("web")[logged:]
    still_serving(system)


@pytest.mark.parametrize("path", ["/ws/prices", "/ws/ingest"])
def test_frames_above_one_mebibyte_close_with_1009_and_bad_utf8_with_1007(system, path):
    headers = headers_for(system, path)
    with connect(f"{system.ws_url}{path}", additional_headers=headers, max_size=None) as ws:
        ws.send("[" + " " * (1 << 20) + "]")
        assert closed_with(ws) == 1009
    with connect(f"{system.ws_url}{path}", additional_headers=headers) as ws:
        ws.send(b"\xff\xfe not utf-8", text=True)
        assert closed_with(ws) == 1007
    still_serving(system)


def test_floods_do_not_starve_other_clients(system):
    """One client floods subscribes, another floods ticks: a third is served meanwhile."""
    sent = {"/ws/prices": 0, "/ws/ingest": 0}

    def flood(path: str, message: str, headers: dict) -> None:
        # max_queue=None: the flooder reads everything, so this is volume, not a stalled reader.
        with connect(f"{system.ws_url}{path}", additional_headers=headers, max_queue=None) as ws:
            for _ in range(3000):
                ws.send(message)
                sent[path] += 1

    flooders = [
        threading.Thread(target=flood, args=("/ws/prices", '{"type": "subscribe"}', {})),
        threading.Thread(target=flood, args=("/ws/ingest", orjson.dumps([TICK] * 10).decode(),
                                             device(system, "fuzz-flood"))),
    ]
    for thread in flooders:
        thread.start()
    try:
        wait_for(lambda: min(sent.values()) >= 300, 20, "the floods to be under way")
        still_serving(system)
    finally:
        for thread in flooders:
            thread.join(timeout=30)
    assert sent == {"/ws/prices": 3000, "/ws/ingest": 3000}, "a flooder was cut off"
    assert int(system.redis.hget("pw:stats:refused", "rate_limited") or 0) > 0
