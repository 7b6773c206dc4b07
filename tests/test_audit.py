"""The audit chain over accepted ticks: intact, then broken by each kind of tampering."""
from __future__ import annotations

import subprocess
import sys

import pytest

from server.audit import verify_chain
from server.config import PROJECT_ROOT
from tests.system import System

TICKS = [{"commodity": "bawang-merah", "market": "pasar-kosambi", "province": "32", "price": 38000 + i}
         for i in range(5)]


@pytest.fixture
def system(tmp_path):
    running = System(tmp_path).start("web")
    yield running
    running.stop()


def test_the_chain_is_intact_after_accepting_ticks(system):
    assert system.post(TICKS).status_code == 202
    assert system.post(TICKS[:2]).status_code == 202
    report = system.http.get("/api/v1/audit/verify").json()
    assert report["intact"] is True and report["checked"] == 7
    result = subprocess.run([sys.executable, "-m", "server.cli", "audit", "verify"], env=system.env,
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "intact: 7 ticks" in result.stdout


@pytest.mark.parametrize("tamper", ["edit", "delete", "truncate"])
def test_tampering_breaks_the_chain_where_it_happened(system, tamper):
    ids = system.post(TICKS).json()["ids"]
    expected_break = {"delete": ids[3], "truncate": None}
    if tamper == "edit":
        # Stream ids only grow, so a forger rewrites the newest entry with a lower price.
        fields = system.redis.xrange("pw:ticks", ids[-1], ids[-1])[0][1]
        system.redis.xdel("pw:ticks", ids[-1])
        forged = fields[b"t"].replace(b"38004", b"18004")
        expected_break["edit"] = system.redis.xadd("pw:ticks", {"t": forged, "h": fields[b"h"]}).decode()
    elif tamper == "delete":
        system.redis.xdel("pw:ticks", ids[2])
    else:
        system.redis.xdel("pw:ticks", ids[-1])
    report = verify_chain(system.redis)
    assert report["intact"] is False
    assert report["broken_at"] == expected_break[tamper]
    assert system.http.get("/api/v1/audit/verify").status_code == 409
    result = subprocess.run([sys.executable, "-m", "server.cli", "audit", "verify"], env=system.env,
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "BROKEN" in result.stdout
