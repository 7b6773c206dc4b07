"""Fixtures shared by test modules."""
from __future__ import annotations

from pathlib import Path

import pytest
import redis

from server.redis_process import start_redis
from tests import markers
from tests.browser import APT_INSTALL_TIMEOUT, APT_UPDATE_TIMEOUT, ARTIFACTS, CHROMIUM, ChromiumUnavailable, ensure_chromium
from tests.cluster import RedisCluster
from tests.system import System


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The fast layer (-m "not system and not browser") is found from each test's code: see
    # tests/markers.py. A test marked by hand keeps its marks.
    for item in items:
        for kind in markers.kinds(item):
            item.add_marker(kind)
    # Installing Chromium happens in the first browser test's setup, which pytest-timeout counts
    # against that test: give the browser tests room for apt-get when it has to run.
    if CHROMIUM.exists():
        return
    room = pytest.mark.timeout(APT_UPDATE_TIMEOUT + APT_INSTALL_TIMEOUT + 120)
    for item in items:
        if "chromium" in getattr(item, "fixturenames", ()):
            item.add_marker(room, append=False)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, installed on first use when missing (see tests/browser.py)."""
    try:
        return ensure_chromium(ARTIFACTS / "chromium-install.log")
    except ChromiumUnavailable as exc:
        pytest.fail(f"headless Chromium unavailable: {exc}", pytrace=False)


@pytest.fixture
def system(tmp_path: Path):
    """The whole system (Redis, engine, web) as real processes; a module may define its own."""
    running = System(tmp_path).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A real Redis Cluster of three masters on 127.0.0.1 (tests/cluster.py), shared by the tests of
    a module (about 2 s to start); every node is stopped at teardown, also after a failed test."""
    with RedisCluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture
def redis_client(tmp_path: Path):
    """A sync client of a real redis-server of the test's own."""
    server = start_redis(tmp_path / "redis-of-test")
    connection = redis.Redis.from_url(server.url)
    yield connection
    connection.close()
    server.stop()
