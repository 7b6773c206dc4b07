"""Who may push and read: tokens, roles, market scopes, rate limits, origins — real processes."""
from __future__ import annotations

import contextlib
import subprocess
import sys

import httpx
import orjson
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from server import auth
from base import keys
from base.config import PROJECT_ROOT
from tests.system import System, wait_for
from tests import partitions

TICK = {"commodity": "bawang-merah", "market": "pasar-kosambi", "province": "32", "price": 38000}


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    running = System(tmp_path_factory.mktemp("access"), env={
        "PASARWATCH_DEVICE_RATE": "5", "PASARWATCH_DEVICE_BURST": "10",
        "PASARWATCH_WS_MAX_PER_ADDRESS": "3", "PASARWATCH_ALLOWED_ORIGINS": "https://tpid.example"}).start("web")
    yield running
    running.stop()


def handshake(url: str, **options) -> None:
    with connect(url, **options):
        pass


def _admitted(url: str) -> bool:
    try:
        handshake(url)
    except InvalidStatus:
        return False
    return True


def post(system: System, ticks, token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{system.url}/api/v1/ticks", content=orjson.dumps(ticks), headers=headers, timeout=10)


def test_writes_need_a_valid_token(system):
    missing = post(system, TICK, None)
    assert missing.status_code == 401 and missing.json()["errors"][0]["reason"] == "missing_token"
    forged = post(system, TICK, "pw_0123456789abcdef_forged")
    assert forged.status_code == 401 and forged.json()["errors"][0]["reason"] == "invalid_token"
    viewer = auth.issue(system.redis, "person", "analis", "viewer")
    assert post(system, TICK, viewer).status_code == 403
    assert not partitions.length(system.redis, "ticks")


def test_a_device_pushes_only_for_its_markets_until_revoked(system):
    token = auth.issue(system.redis, "device", "hp-17", "device", ("pasar-kosambi",))
    assert post(system, TICK, token).status_code == 202
    other = post(system, {**TICK, "market": "pasar-kranji"}, token)
    assert other.status_code == 403 and other.json()["errors"][0]["reason"] == "market_not_allowed"
    mixed = post(system, [TICK, {**TICK, "market": "pasar-kranji"}], token)
    assert mixed.status_code == 422 and mixed.json()["accepted"] == 1
    assert auth.revoke(system.redis, "device", "hp-17")
    assert post(system, TICK, token).status_code == 401


def test_tokens_are_stored_only_as_hashes_and_never_logged(system):
    token = auth.issue(system.redis, "device", "hp-18", "device", ("*",))
    stored = b"".join(system.redis.hvals(keys.CREDENTIALS))
    assert token.encode() not in stored and auth.token_hash(token).encode() in stored
    post(system, TICK, token)
    post(system, TICK, token + "x")
    assert token not in system.log("web")


def test_a_device_over_its_rate_gets_429_with_retry_after(system):
    token = auth.issue(system.redis, "device", "hp-flood", "device", ("*",))
    assert post(system, [TICK] * 10, token).status_code == 202
    refused = post(system, [TICK] * 10, token)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert int(system.redis.hget("pw:stats:refused", "rate_limited")) >= 1


def test_admin_api_registers_a_device_with_an_onboarding_payload(system):
    created = system.http.post("/api/v1/devices", json={"id": "hp-20", "markets": ["pasar-agung"]})
    assert created.status_code == 201
    payload = orjson.loads(created.json()["onboarding"])
    assert payload["token"] == created.json()["token"] and payload["url"].startswith("http")
    assert post(system, {**TICK, "market": "pasar-agung"}, payload["token"]).status_code == 202
    assert "hp-20" in [d["name"] for d in system.http.get("/api/v1/devices").json()["devices"]]
    assert system.http.delete("/api/v1/devices/hp-20").json()["revoked"] is True
    bad = system.http.post("/api/v1/devices", json={"id": "hp 21", "markets": []})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "id"
    assert httpx.get(f"{system.url}/api/v1/devices").status_code == 401


def test_websocket_origin_and_connections_per_address_are_limited(system):
    with pytest.raises(InvalidStatus):
        handshake(f"{system.ws_url}/ws/prices", origin="https://evil.example")
    handshake(f"{system.ws_url}/ws/prices", origin="https://tpid.example")
    with contextlib.ExitStack() as sockets:
        for _ in range(3):
            sockets.enter_context(connect(f"{system.ws_url}/ws/prices"))
        with pytest.raises(InvalidStatus):
            handshake(f"{system.ws_url}/ws/prices")
    wait_for(lambda: _admitted(f"{system.ws_url}/ws/prices"), 10, "the slots to be free again")
    with pytest.raises(InvalidStatus):
        handshake(f"{system.ws_url}/ws/ingest")


def test_device_add_prints_a_token_once_and_writes_a_qr_code(system, tmp_path):
    qr = tmp_path / "hp-30.png"
    result = subprocess.run([sys.executable, "-m", "server.cli", "device", "add", "hp-30", "--market", "pasar-anyar",
                             "--qr", str(qr)], env=system.env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    token = result.stdout.split("token (shown once, store it on the device): ")[1].split()[0]
    assert qr.read_bytes().startswith(b"\x89PNG")
    assert post(system, {**TICK, "market": "pasar-anyar"}, token).status_code == 202


def test_reads_can_require_a_token(tmp_path):
    private = System(tmp_path, env={"PASARWATCH_PUBLIC_READ": "false"}).start("web")
    try:
        assert httpx.get(f"{private.url}/api/v1/series").status_code == 401
        assert private.http.get("/api/v1/series").status_code == 200
        with pytest.raises(InvalidStatus):
            handshake(f"{private.ws_url}/ws/prices")
        handshake(f"{private.ws_url}/ws/prices?token={private.admin_token}")
    finally:
        private.stop()
