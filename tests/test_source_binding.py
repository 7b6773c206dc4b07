"""A tick's ``source`` is bound to the device whose token sent it: no device fills another's
duplicate check, and ``confirm:`` counts devices, not the source names one device writes."""
from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from base.config import PROJECT_ROOT
from tests.system import System
from tests.test_rules_confirm import engine, tick, told, verdict

TICK = {"commodity": "bawang-merah", "market": "pasar-kosambi", "province": "32", "price": 38000}


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sources")
    running = System(tmp, env={"PASARWATCH_DATA_DIR": str(tmp / "data")}).start("web")
    yield running
    running.stop()


def cli(system: System, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "server.cli", *args], env=system.env, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def add_device(system: System, name: str, *sources: str) -> dict:
    """``pasarwatch device add NAME [--source S ...]``: the device's auth header."""
    out = cli(system, "device", "add", name, *[arg for s in sources for arg in ("--source", s)])
    token = out.split("token (shown once, store it on the device): ", 1)[1].split()[0]
    return {"authorization": f"Bearer {token}", "content-type": "application/json"}


def post(system: System, headers: dict, ticks: list[dict]):
    return system.http.post("/api/v1/ticks", content=orjson.dumps(ticks), headers=headers)


def test_a_device_may_not_name_another_devices_source(web):
    rogue, honest = add_device(web, "hp-rogue-1"), add_device(web, "hp-honest-1")
    # The rogue sends the honest device's source with its next sequence numbers.
    response = post(web, rogue, [{**TICK, "source": "hp-honest-1", "seq": 1},
                                 {**TICK, "source": "hp-rogue-1", "seq": 1}])
    assert response.status_code == 422
    body = response.json()
    assert body["accepted"] == 1
    assert [(e["index"], e["field"], e["reason"]) for e in body["errors"]] == [(0, "source", "source_not_allowed")]
    # The honest device's real tick is taken, not dropped as a duplicate.
    response = post(web, honest, [{**TICK, "source": "hp-honest-1", "seq": 1}])
    assert response.status_code == 202 and response.json()["duplicates"] == []


def test_sequence_numbers_are_counted_per_device(web):
    device = add_device(web, "hp-seq-1")
    # An admin may name any source, and still cannot fill the device's duplicate check.
    assert web.post([{**TICK, "source": "hp-seq-1", "seq": n} for n in (1, 2, 3)]).status_code == 202
    response = post(web, device, [{**TICK, "source": "hp-seq-1", "seq": n} for n in (1, 2, 3)])
    assert response.status_code == 202 and response.json()["accepted"] == 3
    # The device's own repeats are still duplicates, across batches and within one.
    response = post(web, device, [{**TICK, "source": "hp-seq-1", "seq": 2}, {**TICK, "source": "hp-seq-1", "seq": 9},
                                  {**TICK, "source": "hp-seq-1", "seq": 9}])
    assert response.status_code == 202
    assert response.json()["accepted"] == 1 and response.json()["duplicates"] == [0, 2]


def test_device_add_names_the_sources_a_device_may_use(web):
    kiosk = add_device(web, "kiosk", "kiosk-1", "kiosk-2")
    assert post(web, kiosk, [{**TICK, "source": "kiosk-2", "seq": 1}]).status_code == 202
    assert post(web, kiosk, [{**TICK, "source": "kiosk-1"}, {**TICK}]).status_code == 202
    refused = post(web, kiosk, [{**TICK, "source": "kiosk"}])
    assert refused.status_code == 422 and refused.json()["errors"][0]["reason"] == "source_not_allowed"
    listed = [line.split("\t") for line in cli(web, "device", "list").splitlines()]
    assert ["kiosk", "active", "*", "kiosk-1,kiosk-2"] in listed


def test_the_devices_api_takes_the_sources(web):
    response = web.http.post("/api/v1/devices", json={"id": "hp-api-1", "markets": ["*"],
                                                      "sources": ["hp-api-1", "stall-9"]})
    assert response.status_code == 201 and response.json()["sources"] == ["hp-api-1", "stall-9"]
    headers = {"authorization": f"Bearer {response.json()['token']}", "content-type": "application/json"}
    assert post(web, headers, [{**TICK, "source": "stall-9"}]).status_code == 202
    default = web.http.post("/api/v1/devices", json={"id": "hp-api-2", "markets": ["*"]})
    assert default.status_code == 201 and default.json()["sources"] == ["hp-api-2"]
    bad = web.http.post("/api/v1/devices", json={"id": "hp-api-3", "markets": ["*"], "sources": ["no spaces"]})
    assert bad.status_code == 422
    assert (bad.json()["errors"][0]["field"], bad.json()["errors"][0]["reason"]) == ("sources", "bad_sources")


# -- confirmation counts devices (rules/engine.py: _note_source) ---------------------------------

def test_one_device_naming_two_sources_does_not_confirm_its_own_alert():
    rules = engine()
    first = rules.on_tick({**tick(1, source="stall-1"), "device": "hp-1"}, verdict(12))
    assert told(first) == [("pasar-kosambi", "fired", "awas", False)]
    assert rules.on_tick({**tick(2, source="stall-2"), "device": "hp-1"}, verdict(12)) == []
    confirmed = rules.on_tick({**tick(3, source="stall-2"), "device": "hp-2"}, verdict(12))
    assert told(confirmed) == [("pasar-kosambi", "confirmed", "awas", True)]
