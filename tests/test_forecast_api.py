"""GET /api/v1/forecast against a real Redis holding a series state the stack checkpointed.

The state is what the engine writes (a ``SeriesState`` state document, detectors/state.py, in
``pw:state:series``), built by replaying the real chilli fixture (18 West Java markets, May-Aug
2021) through the stack.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis
from starlette.applications import Starlette
from starlette.testclient import TestClient

from detectors.recorded import read_paths
from pipeline.replay import reporting_days
from detectors.stack import DetectorStack
from detectors.state import encode_state
from base.catalog import load_catalog
from server import forecast_api
from base import keys
from server.access import Gate
from tests.redis_server import start_redis
from tests import partitions

FIXTURE = Path(__file__).parent / "fixtures" / "pihps-cabai-rawit-merah-2021-05-08.csv"
SERIES = ("cabai-rawit-merah", "pasar-kosambi")


@pytest.fixture(scope="module")
def stack() -> DetectorStack:
    stack = DetectorStack()
    for day in reporting_days(read_paths([FIXTURE], load_catalog())):
        stack.process_batch(day)
    return stack


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory, stack):
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        with redis.Redis.from_url(server.url) as sync:
            # Two partitions: the handler reads the state where the series' commodity is routed.
            partitions.fix(sync, 2)
            sync.hset(partitions.of(sync, SERIES[0]).state_series, keys.series_key(*SERIES),
                      encode_state(stack.series_state(SERIES)))
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(redis_url):
    app = Starlette(routes=forecast_api.routes)
    app.state.redis = AsyncRedis.from_url(redis_url)
    with redis.Redis.from_url(redis_url) as sync:
        app.state.partitions = partitions.stored(sync)
    app.state.gate = Gate(public_read=True, device_rate=10.0, device_burst=10.0,
                          ws_per_address=4, allowed_origins=())
    with TestClient(app) as test_client:
        yield test_client


def test_forecast_has_a_widening_interval_around_recent_prices(client, stack):
    response = client.get("/api/v1/forecast", params={"commodity": SERIES[0], "market": SERIES[1]})
    assert response.status_code == 200
    body = response.json()
    assert body["horizon"] == 7 and body["warm"] is True and body["interval"] == 0.95
    steps = body["steps"]
    assert [s["step"] for s in steps] == list(range(1, 8))
    assert all(s["lo"] < s["level"] < s["hi"] for s in steps)
    widths = [s["hi"] - s["lo"] for s in steps]
    assert widths == sorted(widths) and widths[-1] > widths[0]
    # The model's own forecast, as the stack in the engine would give it.
    assert steps[0]["level"] == pytest.approx(stack.forecast(SERIES, 1)[0]["level"])
    # Steps are dated one usual gap (a reporting day) apart after the last tick.
    assert steps[1]["ts"] - steps[0]["ts"] == pytest.approx(body["step_seconds"])
    assert steps[0]["ts"] > body["last_ts"]


def test_horizon_is_honoured(client):
    body = client.get("/api/v1/forecast", params={"commodity": SERIES[0], "market": SERIES[1],
                                                   "horizon": "30"}).json()
    assert len(body["steps"]) == 30


def test_an_unknown_series_is_a_404_naming_it(client):
    response = client.get("/api/v1/forecast", params={"commodity": SERIES[0], "market": "pasar-nowhere"})
    assert response.status_code == 404
    error = response.json()["errors"][0]
    assert error["field"] == "market" and error["reason"] == "unknown_series"
    assert "cabai-rawit-merah/pasar-nowhere" in error["detail"]


class Exploit:
    """What an attacker with access to Redis stores: unpickling it would call os.mkdir."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (str(self.path),)


@pytest.mark.parametrize("market, blob", [
    ("pasar-pickled", lambda path: pickle.dumps(Exploit(path))),
    ("pasar-forged", lambda path: b'{"v":1,"state":{"__t":"posix.mkdir","args":["%s"]}}' % str(path).encode()),
    ("pasar-huge", lambda path: b'{"v":1,"state":[' + b"0," * 600_000 + b"0]}"),
    ("pasar-not-a-series", lambda path: b'{"v":1,"state":{"zscore":1}}'),
])
def test_state_that_the_engine_did_not_write_is_refused_and_never_run(redis_url, client, tmp_path, market, blob):
    target = tmp_path / "pwned"
    with redis.Redis.from_url(redis_url) as sync:
        sync.hset(partitions.of(sync, SERIES[0]).state_series, keys.series_key(SERIES[0], market), blob(target))
    response = client.get("/api/v1/forecast", params={"commodity": SERIES[0], "market": market})
    assert response.status_code == 503
    error = response.json()["errors"][0]
    assert error["field"] == "market" and error["reason"] == "state_unreadable"
    assert not target.exists()


@pytest.mark.parametrize("params, field", [
    ({"market": "pasar-kosambi"}, "commodity"),
    ({"commodity": "cabai-rawit-merah"}, "market"),
    ({"commodity": "cabai-rawit-merah", "market": "pasar-kosambi", "horizon": "0"}, "horizon"),
    ({"commodity": "cabai-rawit-merah", "market": "pasar-kosambi", "horizon": "91"}, "horizon"),
    ({"commodity": "cabai-rawit-merah", "market": "pasar-kosambi", "horizon": "seven"}, "horizon"),
])
def test_bad_parameters_are_a_422_naming_the_field(client, params, field):
    response = client.get("/api/v1/forecast", params=params)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field
