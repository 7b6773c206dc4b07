"""End to end: real Redis, real engine and web processes, real WebSocket clients."""
from __future__ import annotations

import time

import orjson
from websockets.sync.client import connect

from server.api import alert_order
from tests.system import System, wait_for

DAY = 86400.0
START = 1_704_067_200.0  # 2024-01-01T00:00:00Z
MARKETS = ["pasar-kosambi", "pasar-kiaracondong", "pasar-cisalak", "pasar-anyar", "pasar-kanoman"]
# Below the chilli reference price (HAP) of the catalog, so only the detectors under test fire.
BASE = {"pasar-kosambi": 45000, "pasar-kiaracondong": 46000, "pasar-cisalak": 44500,
        "pasar-anyar": 45500, "pasar-kanoman": 47000}


# Other commodities at a fraction of the chilli prices, so every series has a level of its own.
SCALE = {"cabai-rawit-merah": 1.0, "bawang-merah": 0.8, "telur-ayam-ras": 0.6, "cabai-merah-keriting": 0.9}


def day_ticks(day: int, prices: dict[str, float] | None = None, commodity: str = "cabai-rawit-merah",
              source: str | None = None, start: float = START) -> list[dict]:
    """One report per market; prices wobble a little from day to day like the real feed.

    With ``source``, each tick carries it and a sequence number, as a device's ticks do.
    """
    prices = prices or {}
    ticks = []
    for i, market in enumerate(MARKETS):
        usual = SCALE[commodity] * (BASE[market] + 500 * (day % 3) - 250 * (i % 2))
        tick = {"commodity": commodity, "market": market, "province": "32",
                "price": prices.get(market, usual), "ts": start + day * DAY + i}
        if source:
            tick.update(source=source, seq=day * len(MARKETS) + i)
        ticks.append(tick)
    return ticks


def feed(system: System, days: range, overrides: dict[int, dict[str, float]] | None = None) -> int:
    overrides = overrides or {}
    sent = 0
    for day in days:
        response = system.post(day_ticks(day, overrides.get(day)))
        assert response.status_code == 202, response.text
        sent += len(MARKETS)
    return sent


class Messages:
    """Reads frames (JSON arrays) from a /ws/prices client and keeps every message."""

    def __init__(self, ws):
        self.ws = ws
        self.seen: list[dict] = []
        self.last_alert: str | None = None  # what a reconnecting client sends as `since`

    def until(self, predicate, timeout: float = 15.0, start: int = 0) -> dict:
        """The first message from index ``start`` on that matches, reading more as needed."""
        deadline = time.monotonic() + timeout
        checked = start
        while True:
            for message in self.seen[checked:]:
                if predicate(message):
                    return message
            checked = len(self.seen)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching message in {timeout}s; saw {[m.get('type') for m in self.seen][-20:]}")
            frame = orjson.loads(self.ws.recv(timeout=remaining))
            assert isinstance(frame, list)
            self.seen.extend(frame)
            self.last_alert = next((m["id"] for m in reversed(frame) if m["type"] == "alert"), self.last_alert)


def test_posted_ticks_reach_a_websocket_client_as_prices(system):
    with connect(f"{system.ws_url}/ws/prices") as ws:
        ws.send(orjson.dumps({"type": "subscribe", "commodity": ["cabai-rawit-merah"]}).decode())
        messages = Messages(ws)
        snapshot = messages.until(lambda m: m["type"] == "snapshot")
        assert snapshot["prices"] == []
        feed(system, range(3))
        price = messages.until(lambda m: m["type"] == "price" and m["market"] == "pasar-anyar"
                               and m["ts"] >= START + 2 * DAY)
        assert price["commodity"] == "cabai-rawit-merah" and price["province"] == "32"
        assert set(price["verdict"]) >= {"scores", "fired", "quarantined", "expected"}
        # A client subscribed to another commodity gets none of these.
    with connect(f"{system.ws_url}/ws/prices") as other:
        other.send(orjson.dumps({"type": "subscribe", "commodity": ["bawang-merah"]}).decode())
        frame = orjson.loads(other.recv(timeout=10))
        assert frame[0]["type"] == "snapshot" and frame[0]["prices"] == []


def test_a_spike_at_one_market_is_quarantined_alerted_and_resolves(system):
    feed(system, range(20))
    with connect(f"{system.ws_url}/ws/prices") as ws:
        ws.send(orjson.dumps({"type": "subscribe"}).decode())
        messages = Messages(ws)
        messages.until(lambda m: m["type"] == "snapshot")
        # An entry error: ten times the usual price at one market, the others unchanged.
        feed(system, range(20, 21), {20: {"pasar-cisalak": 445000}})
        spike = messages.until(lambda m: m["type"] == "price" and m["market"] == "pasar-cisalak"
                               and m["price"] == 445000)
        assert spike["verdict"]["quarantined"] is True
        assert "crossmarket" in spike["verdict"]["fired"]
        firing = messages.until(lambda m: m["type"] == "alert" and m["rule"] == "harga-menyimpang")
        assert firing["state"] == "firing" and firing["market"] == "pasar-cisalak"
        assert firing["key"] == "harga-menyimpang/cabai-rawit-merah/pasar-cisalak"
        # Normal prices again: the quarantined tick was not learned, so nothing else fires.
        feed(system, range(21, 23))
        resolved = messages.until(lambda m: m["type"] == "alert" and m["state"] == "resolved")
        assert resolved["key"] == firing["key"] and resolved["price"] < 50000
        assert resolved["fired_price"] == 445000
    next_day = system.http.get("/api/v1/series", params={"market": "pasar-cisalak"}).json()["series"][0]
    assert next_day["verdict"]["quarantined"] is False and next_day["verdict"]["fired"] == []
    assert [a["state"] for a in system.alerts(commodity="cabai-rawit-merah")] == ["firing", "resolved"]


def test_a_market_wide_move_is_learned_not_alerted_per_market(system):
    feed(system, range(20))
    up = {market: BASE[market] * 1.6 for market in MARKETS}
    sent = feed(system, range(20, 25), {day: up for day in range(20, 25)})
    system.wait_processed(20 * len(MARKETS) + sent)
    rows = system.http.get("/api/v1/series/cabai-rawit-merah/pasar-kanoman/history").json()["points"]
    moved = [p for p in rows if p["ts"] >= START + 20 * DAY]
    assert len(moved) == 5
    assert not any(p["verdict"]["quarantined"] for p in moved)
    assert not [a for a in system.alerts() if a["rule"] == "harga-menyimpang"]
    # Learned: after a few days at the new level, the usual level has followed it.
    assert moved[-1]["verdict"]["expected"]["level"] > BASE["pasar-kanoman"] * 1.3


def test_a_malformed_rule_file_keeps_the_last_good_rules(system):
    feed(system, range(20))
    (system.rules_dir / "prices.yaml").write_text("rules:\n  - name: broken\n    when: zscore.fired and (\n")
    status = wait_for(lambda: (s := system.http.get("/api/v1/rules").json()) and s["errors"] and s, 10,
                      "rules status to report the error")
    assert status["ok"] is False
    assert status["errors"][0]["file"].endswith("prices.yaml") and status["errors"][0]["line"] == 3
    assert "harga-menyimpang" in [rule["name"] for rule in status["rules"]]
    feed(system, range(20, 21), {20: {"pasar-anyar": 455000}})
    alert = wait_for(lambda: [a for a in system.alerts() if a["rule"] == "harga-menyimpang"], 15,
                     "an alert from the last good rules")
    assert alert[0]["market"] == "pasar-anyar"


def test_editing_a_rule_file_changes_behaviour_without_restart(system):
    feed(system, range(20))
    engine_pid = system.processes["engine"].pid
    path = system.rules_dir / "prices.yaml"
    path.write_text(path.read_text().replace("    when: quarantined\n    severity: warning",
                                             "    when: quarantined\n    severity: critical"))
    wait_for(lambda: any(r["name"] == "harga-menyimpang" and r["severity"] == "critical"
                         for r in system.http.get("/api/v1/rules").json()["rules"]), 10, "reload")
    feed(system, range(20, 21), {20: {"pasar-kosambi": 450000}})
    alert = wait_for(lambda: [a for a in system.alerts() if a["rule"] == "harga-menyimpang"], 15, "alert")
    assert alert[0]["severity"] == "critical"
    assert system.processes["engine"].pid == engine_pid and system.processes["engine"].poll() is None


def test_killing_the_engine_loses_no_tick_and_duplicates_no_alert(system):
    sent = feed(system, range(20))
    system.wait_processed(sent)
    system.kill("engine")
    # Accepted while the engine is down: the spike and the following days.
    sent += feed(system, range(20, 24), {20: {"pasar-kanoman": 470000}})
    system.start_process("engine")
    system.wait_processed(sent)
    # Kill it again mid-stream and restart: ticks read but not committed are processed once.
    sent += feed(system, range(24, 40))
    system.kill("engine")
    system.start_process("engine")
    system.wait_processed(sent)
    assert system.processed() == sent
    alerts = [a for a in system.alerts() if a["rule"] == "harga-menyimpang"]
    assert [(a["state"], a["market"]) for a in alerts] == [("firing", "pasar-kanoman"), ("resolved", "pasar-kanoman")]
    history = system.http.get("/api/v1/series/cabai-rawit-merah/pasar-kanoman/history").json()["points"]
    assert [p["ts"] for p in history] == [START + d * DAY + 4 for d in range(40)]


def test_a_reconnecting_client_gets_the_alerts_it_missed(system):
    feed(system, range(20))
    with connect(f"{system.ws_url}/ws/prices") as ws:
        ws.send(orjson.dumps({"type": "subscribe"}).decode())
        Messages(ws).until(lambda m: m["type"] == "snapshot")
    feed(system, range(20, 23), {20: {"pasar-anyar": 455000}})
    wait_for(lambda: len(system.alerts()) >= 2, 15, "firing and resolved alerts")
    first = system.alerts()[0]
    with connect(f"{system.ws_url}/ws/prices") as ws:
        ws.send(orjson.dumps({"type": "subscribe", "since": first["id"]}).decode())
        messages = Messages(ws)
        messages.until(lambda m: m["type"] == "snapshot")
        missed = messages.until(lambda m: m["type"] == "alert")
        assert missed["state"] == "resolved" and alert_order(missed) > alert_order(first)


def test_ws_ingest_acknowledges_each_message(system):
    with connect(f"{system.ws_url}/ws/ingest", additional_headers=system.auth_headers) as ws:
        ws.send(orjson.dumps({"ref": "batch-1", "ticks": day_ticks(0)}).decode())
        ack = orjson.loads(ws.recv(timeout=10))
        assert ack["type"] == "ack" and ack["ref"] == "batch-1" and ack["status"] == 202
        assert ack["accepted"] == len(MARKETS)
        ws.send(orjson.dumps({"commodity": "cabai-rawit-merah", "market": "pasar-anyar",
                              "province": "32", "price": "mahal"}).decode())
        refused = orjson.loads(ws.recv(timeout=10))
        assert refused["status"] == 422 and refused["errors"][0]["reason"] == "not_a_number"
        ws.send("{not json")
        assert orjson.loads(ws.recv(timeout=10))["errors"][0]["reason"] == "invalid_json"
    system.wait_processed(len(MARKETS))


def test_a_source_whose_ticks_are_often_quarantined_is_flagged(system):
    from server import auth

    feed(system, range(20))
    rogue = auth.issue(system.redis, "device", "hp-rogue", "device", ("pasar-cisalak",))
    sent = 20 * len(MARKETS)
    for day in range(20, 46):
        others = [t for t in day_ticks(day) if t["market"] != "pasar-cisalak"]
        assert system.post(others).status_code == 202
        mine = [t for t in day_ticks(day, {"pasar-cisalak": 445000 if day % 2 else 44500})
                if t["market"] == "pasar-cisalak"]
        response = system.http.post("/api/v1/ticks", content=orjson.dumps(mine),
                                    headers={"authorization": f"Bearer {rogue}"})
        assert response.status_code == 202
        sent += len(MARKETS)
    system.wait_processed(sent)
    sources = {s["source"]: s for s in system.http.get("/api/v1/sources").json()["sources"]}
    assert sources["hp-rogue"]["state"] == "suspect"
    assert sources["hp-rogue"]["quarantine_rate"] >= 0.2
    assert sources.get("test-admin", {"state": "ok"})["state"] == "ok"
