"""The demo replays one real period at its real dates, once, in a data directory of its own,
and says when it has ended."""
from __future__ import annotations

import contextlib
import csv
import itertools
from datetime import datetime

import httpx
import orjson
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis
from starlette.applications import Starlette
from starlette.testclient import TestClient

from server import demo

from base import keys
from tests.redis_server import start_redis
from tests.system import wait_for
from tests.test_launcher import Launcher

CSV = demo.DEMO_DIR / "pihps-jabar-2024.csv"


def csv_rows() -> list[dict]:
    with CSV.open(newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if row["price"]]


def test_the_feed_sends_every_csv_day_at_its_real_date_once():
    rows = csv_rows()
    dates = sorted({row["date"] for row in rows})
    # One more than there are days: a feed that loops would yield it.
    sent = list(itertools.islice(demo.timeline(demo.load_days(), 0.0), len(dates) + 1))
    assert [datetime.fromtimestamp(ts, demo.WIB).date().isoformat() for ts, _ in sent] == dates
    assert sum(len(day_rows) for _, day_rows in sent) == len(rows)
    assert demo.period(demo.load_days()) == (dates[0], dates[-1]) == ("2023-09-01", "2024-06-28")


def test_the_feed_resumes_after_the_newest_price_and_ends_after_the_last_day():
    days = demo.load_days()
    tenth = days[9][0].timestamp()
    assert next(demo.timeline(days, tenth))[0] == days[10][0].timestamp()
    assert list(itertools.islice(demo.timeline(days, days[-1][0].timestamp()), 1)) == []


def test_demo_status_endpoint(tmp_path):
    process = start_redis(tmp_path / "redis")
    sync = redis.Redis.from_url(process.url)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        app.state.redis = AsyncRedis.from_url(process.url)
        yield
        await app.state.redis.aclose()

    try:
        with TestClient(Starlette(routes=demo.routes, lifespan=lifespan)) as client:
            assert client.get("/api/v1/demo").json() == {"state": "off"}
            pubsub = sync.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(keys.EVENTS)
            demo.publish_status(sync, "finished", demo.load_days())
            body = client.get("/api/v1/demo").json()
            assert (body["state"], body["from"], body["to"]) == ("finished", "2023-09-01", "2024-06-28")
            announced = wait_for(lambda: pubsub.get_message(timeout=0.1), 10, "the demo event")
            assert orjson.loads(announced["data"])["type"] == "demo"
            pubsub.close()
    finally:
        sync.close()
        process.stop()


@pytest.mark.timeout(300)
def test_up_demo_replays_the_real_period_in_its_own_data_directory_then_says_finished(tmp_path):
    launcher = Launcher(tmp_path, "--demo", PASARWATCH_DEMO_SPEED="1000")
    demo_dir = tmp_path / "var" / "demo"
    try:
        launcher.wait_serving(demo_dir)
        client = redis.Redis.from_url((demo_dir / "redis.url").read_text().strip())

        def status() -> dict | None:
            raw = client.get(keys.DEMO_STATUS)
            return orjson.loads(raw) if raw else None

        try:
            ended = wait_for(lambda: (status() or {}).get("state") == "finished" and status(), 240,
                             f"the replay to end (log: {launcher.log()[-3000:]})")
            assert (ended["from"], ended["to"]) == ("2023-09-01", "2024-06-28")
            last_day = demo.load_days()[-1][0].timestamp()
            # The engine commits every replayed day; the newest price is the data's last day.
            wait_for(lambda: max(s["ts"] for s in httpx.get(launcher.url + "/api/v1/series").json()["series"])
                     == last_day, 120, "the engine to commit the last day")
        finally:
            client.close()
        assert "demo: replaying 2023-09-01 to 2024-06-28" in launcher.log()
    finally:
        assert launcher.stop() == 0
    # The deployment's own data directory holds nothing of the demo, and the demo kept no file.
    assert sorted(p.name for p in (tmp_path / "var").iterdir()) == ["demo"]
    assert not list(demo_dir.glob("redis/appendonly*"))
