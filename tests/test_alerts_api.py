"""``GET /api/v1/alerts``: what is firing now, one entry per alert key, and the event history
under its own parameter. A real web process, engine and Redis (tests/system.py)."""
from __future__ import annotations

import pytest

from tests.system import System, wait_for
from tests import partitions
from tests.test_pipeline import feed

SPIKE = 450000.0


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    """Two entry errors: pasar-anyar's fires and resolves; pasar-kanoman's fires, resolves and
    fires again, so its key has two firing events in the history but is one alert firing now.
    The tests only read, so they share one system."""
    system = System(tmp_path_factory.mktemp("alerts")).start()
    sent = feed(system, range(20), {})
    sent += feed(system, range(20, 24), {20: {"pasar-anyar": SPIKE, "pasar-kanoman": SPIKE},
                                         23: {"pasar-kanoman": SPIKE}})
    system.wait_processed(sent)
    wait_for(lambda: len(system.alerts(state="firing", history="true")) >= 3, 15, "three firing events")
    yield system
    system.stop()


def keys(alerts: list[dict]) -> list[str]:
    return [a["key"] for a in alerts]


def test_state_firing_is_what_fires_now_one_entry_per_key(episodes):
    firing = episodes.alerts(state="firing")
    assert keys(firing) == ["harga-menyimpang/cabai-rawit-merah/pasar-kanoman"]
    assert firing[0]["state"] == "firing" and firing[0]["price"] == SPIKE
    # Exactly the engine's current set.
    assert len(firing) == len(partitions.merged(episodes.redis, "firing"))


def test_the_history_keeps_every_event_under_its_own_parameter(episodes):
    past_firing = episodes.alerts(state="firing", history="true")
    assert sorted(keys(past_firing)) == sorted(
        ["harga-menyimpang/cabai-rawit-merah/pasar-anyar"]
        + ["harga-menyimpang/cabai-rawit-merah/pasar-kanoman"] * 2)
    everything = episodes.alerts()
    assert everything == episodes.alerts(history="true")
    assert [a["state"] for a in everything if a["market"] == "pasar-kanoman"] == ["firing", "resolved", "firing"]
    # Oldest first, ids increasing.
    ids = [tuple(map(int, a["id"].split("-"))) for a in everything]
    assert ids == sorted(ids)


def test_firing_now_filters_and_limits_like_the_history(episodes):
    assert episodes.alerts(state="firing", market="pasar-anyar") == []
    assert keys(episodes.alerts(state="firing", commodity="cabai-rawit-merah", limit=1)) == \
        ["harga-menyimpang/cabai-rawit-merah/pasar-kanoman"]


def test_since_with_the_current_set_is_refused_naming_the_field(episodes):
    response = episodes.http.get("/api/v1/alerts", params={"state": "firing", "since": "1-0"})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "since" and "history=true" in error["detail"]
    response = episodes.http.get("/api/v1/alerts", params={"history": "maybe"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "history"
