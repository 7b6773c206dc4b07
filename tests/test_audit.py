"""The audit chain over accepted ticks: intact, then broken by each rewrite someone holding only
Redis can make (the key and the pin live in files Redis never sees)."""
from __future__ import annotations

import secrets
import stat
import subprocess
import sys

import orjson
import pytest

from base import keys
from server.audit import AuditFiles, chain_hash, keyed_link, verify_chain
from base.config import PROJECT_ROOT
from tests.system import System, wait_for

# Every tick here is of one commodity, so of one partition: its stream is the chain under test.
PART = keys.Partition(keys.partition_of("bawang-merah", 8))
TICKS = [{"commodity": "bawang-merah", "market": "pasar-kosambi", "province": "32", "price": 38000 + i}
         for i in range(5)]


def start(tmp_path, *processes: str, **env: str) -> System:
    return System(tmp_path, env={"PASARWATCH_DATA_DIR": str(tmp_path / "data"), **env}).start(*processes)


@pytest.fixture
def system(tmp_path):
    running = start(tmp_path, "web")
    yield running
    running.stop()


def verify_command(system: System) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli", "audit", "verify"], env=system.env,
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)


def assert_broken(system: System, reason_part: str) -> dict:
    """Both the API and the command say broken, and why."""
    response = system.http.get("/api/v1/audit/verify")
    assert response.status_code == 409, response.text
    report = response.json()
    assert report["intact"] is False and reason_part in report["reason"], report
    result = verify_command(system)
    assert result.returncode == 1 and "BROKEN" in result.stdout and reason_part in result.stdout, result.stdout
    return report


def newest(system: System, count: int = 1) -> list[tuple[bytes, dict]]:
    return list(reversed(system.redis.xrevrange(PART.ticks, count=count)))


def test_the_chain_is_intact_after_accepting_ticks(system, tmp_path):
    assert system.post(TICKS).status_code == 202
    assert system.post(TICKS[:2]).status_code == 202
    report = system.http.get("/api/v1/audit/verify").json()
    assert report["intact"] is True and report["checked"] == 7 and report["unkeyed"] == 0
    assert report["pinned"] == report["newest"] == newest(system)[0][0].decode()
    result = verify_command(system)
    assert result.returncode == 0 and "intact: 7 ticks" in result.stdout
    files = AuditFiles(tmp_path / "data")
    assert stat.S_IMODE(files.key_path.stat().st_mode) == 0o600
    key = files.key()
    # The key never went to Redis: no stored value holds it.
    for name in system.redis.scan_iter():
        if system.redis.type(name) == b"string":
            assert key.hex().encode() not in system.redis.get(name)


def test_removing_the_newest_entry_and_resetting_the_head_is_caught(system):
    assert system.post(TICKS).status_code == 202
    (before, fields_before), (last, _) = newest(system, 2)
    system.redis.xdel(PART.ticks, last)
    system.redis.set(PART.audit_head, fields_before[b"h"])
    # The chain that is left is a valid chain; only the pin outside Redis knows it was longer.
    assert_broken(system, f"entry {last.decode()}, pinned outside Redis")


def test_a_reset_head_stays_evident_after_the_next_real_tick(system):
    assert system.post(TICKS).status_code == 202
    (_, fields_before), (last, _) = newest(system, 2)
    system.redis.xdel(PART.ticks, last)
    system.redis.set(PART.audit_head, fields_before[b"h"])
    # A device's next tick chains onto the reset head and moves the pin past the gap ...
    assert system.post([{**TICKS[0], "price": 39000}]).status_code == 202
    # ... but the web process noticed its pinned entry had gone before it appended.
    assert_broken(system, f"pinned entry {last.decode()}")


@pytest.mark.parametrize("forger", ["sha1", "guessed-key"])
def test_an_appended_forged_tick_with_a_recomputed_link_is_caught(system, forger):
    assert system.post(TICKS).status_code == 202
    head = system.redis.get(PART.audit_head).decode()
    forged = orjson.loads(newest(system)[0][1][b"t"])
    forged["price"] = 95000
    payload = orjson.dumps(forged)
    link = chain_hash(head, payload) if forger == "sha1" else keyed_link(secrets.token_bytes(32), head, payload)
    entry = system.redis.xadd(PART.ticks, {"t": payload, "h": link}).decode()
    system.redis.set(PART.audit_head, link)
    report = assert_broken(system, "forged" if forger == "sha1" else "does not match")
    assert report["broken_at"] == entry


def test_an_edited_middle_tick_with_the_rest_rewritten_is_caught(system):
    ids = system.post(TICKS).json()["ids"]
    # Stream ids only grow, so a forger rewrites from the edited tick on, relinking each entry
    # with the best it has: a key of its own.
    kept = system.redis.xrange(PART.ticks, ids[2], "+")
    system.redis.xdel(PART.ticks, *ids[2:])
    previous = system.redis.xrange(PART.ticks, ids[1], ids[1])[0][1][b"h"].decode()
    forger_key = secrets.token_bytes(32)
    rewritten = []
    for n, (_, fields) in enumerate(kept):
        payload = fields[b"t"].replace(b"38002", b"18002") if n == 0 else fields[b"t"]
        previous = keyed_link(forger_key, previous, payload)
        rewritten.append(system.redis.xadd(PART.ticks, {"t": payload, "h": previous}).decode())
    system.redis.set(PART.audit_head, previous)
    report = assert_broken(system, "does not match")
    assert report["broken_at"] == rewritten[0]


@pytest.mark.parametrize("tamper", ["edit", "delete", "truncate"])
def test_tampering_breaks_the_chain_where_it_happened(system, tamper, tmp_path):
    ids = system.post(TICKS).json()["ids"]
    expected_break = {"delete": ids[3], "truncate": None}
    if tamper == "edit":
        # The newest entry rewritten with a lower price, keeping its link.
        fields = system.redis.xrange(PART.ticks, ids[-1], ids[-1])[0][1]
        system.redis.xdel(PART.ticks, ids[-1])
        forged = fields[b"t"].replace(b"38004", b"18004")
        expected_break["edit"] = system.redis.xadd(PART.ticks, {"t": forged, "h": fields[b"h"]}).decode()
    elif tamper == "delete":
        system.redis.xdel(PART.ticks, ids[2])
    else:
        system.redis.xdel(PART.ticks, ids[-1])
    files = AuditFiles(tmp_path / "data")
    report = verify_chain(system.redis, files.key(), files.pins().get(PART.number), partition=PART)
    assert report["intact"] is False
    assert report["broken_at"] == expected_break[tamper]
    assert_broken(system, "")


def test_ticks_written_before_the_chain_was_keyed_still_verify(tmp_path):
    """An existing deployment's SHA-1 chain goes on under the key; SHA-1 after it is refused."""
    running = System(tmp_path, env={"PASARWATCH_DATA_DIR": str(tmp_path / "data")})
    try:
        previous = ""
        for tick in TICKS[:3]:
            payload = orjson.dumps({**tick, "ts": 1.7e9, "device": "old"})
            previous = chain_hash(previous, payload)
            running.redis.xadd(PART.ticks, {"t": payload, "h": previous})
        running.redis.set(PART.audit_head, previous)
        running.start("web")
        assert running.post(TICKS[3:]).status_code == 202
        report = running.http.get("/api/v1/audit/verify").json()
        assert report["intact"] is True and report["checked"] == 5 and report["unkeyed"] == 3
        head = running.redis.get(PART.audit_head).decode()
        payload = orjson.dumps({**TICKS[0], "price": 1000})
        running.redis.xadd(PART.ticks, {"t": payload, "h": chain_hash(head, payload)})
        running.redis.set(PART.audit_head, chain_hash(head, payload))
        assert_broken(running, "an unkeyed link after keyed ones")
    finally:
        running.stop()


def test_retention_trimming_keeps_the_chain_verifiable_and_a_moved_anchor_is_caught(tmp_path):
    # About 1.7 seconds of retention: the engine trims while the test keeps ticks coming.
    running = start(tmp_path, "engine", "web", PASARWATCH_TICKS_RETENTION_DAYS="0.00002")
    try:
        assert running.post(TICKS).status_code == 202

        def trimmed() -> bool:
            assert running.post(TICKS[:1]).status_code == 202
            return bool(running.redis.get(PART.audit_anchor))

        wait_for(trimmed, 30, "the engine to trim old ticks")
        report = running.http.get("/api/v1/audit/verify").json()
        assert report["intact"] is True and report["anchored"] is True, report
        assert verify_command(running).returncode == 0
        # Someone holding Redis drops all but the newest tick and moves the anchor as a trim would.
        running.kill("engine")
        (anchor_id, anchor_fields), _ = newest(running, 2)
        running.redis.set(PART.audit_anchor, anchor_id + b" " + anchor_fields[b"h"])
        running.redis.xtrim(PART.ticks, minid=anchor_id.decode(), approximate=False)
        running.redis.xdel(PART.ticks, anchor_id)
        assert_broken(running, "the anchor")
    finally:
        running.stop()
