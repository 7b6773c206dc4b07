"""The fan-out hub's per-client backlog: conflation, no dropped alerts, slow clients cut off."""
from __future__ import annotations

import asyncio

import orjson

from server.hub import Client, Filter, Hub


def price(market: str, value: float) -> bytes:
    return orjson.dumps({"type": "price", "commodity": "cabai-rawit-merah", "market": market,
                         "province": "32", "price": value})


def alert(n: int) -> bytes:
    return orjson.dumps({"type": "alert", "id": f"{n}-0", "commodity": "cabai-rawit-merah",
                         "market": "pasar-a", "province": "32", "state": "firing"})


class BlockedSocket:
    """A client that reads nothing until released: its frames pile up."""

    def __init__(self):
        self.frames: list[list[dict]] = []
        self.release = asyncio.Event()

    async def send(self, text: str) -> None:
        await self.release.wait()
        self.frames.append(orjson.loads(text))

    async def read(self, client: Client, writer: asyncio.Task, frames: int) -> list[list[dict]]:
        """Start reading; once ``frames`` frames came, close the client and return them."""
        self.release.set()
        while len(self.frames) < frames:
            await asyncio.sleep(0)
        client.drop("done")
        await writer
        return self.frames


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def test_a_slow_client_gets_the_newest_price_per_series_and_every_alert_in_one_frame():
    async def scenario():
        hub = Hub(redis=None, max_backlog=100, send_timeout=5)
        socket = BlockedSocket()
        client = hub.add(socket.send)
        writer = asyncio.create_task(client.write_forever())
        hub.broadcast(price("pasar-a", 1))
        await asyncio.sleep(0)  # let the writer take the first frame and block on the socket
        for value in range(2, 50):
            hub.broadcast(price("pasar-a", value))
            hub.broadcast(price("pasar-b", value * 10))
        hub.broadcast(alert(1))
        hub.broadcast(alert(2))
        return await socket.read(client, writer, 2)

    first, second = run(scenario())
    assert [m["price"] for m in first] == [1]
    assert [m["type"] for m in second] == ["alert", "alert", "price", "price"]
    assert [m["id"] for m in second[:2]] == ["1-0", "2-0"]
    assert {m["market"]: m["price"] for m in second[2:]} == {"pasar-a": 49, "pasar-b": 490}


def test_a_client_whose_alert_backlog_overflows_is_dropped_not_the_others():
    async def scenario():
        hub = Hub(redis=None, max_backlog=5, send_timeout=5)
        stuck, healthy = BlockedSocket(), BlockedSocket()
        healthy.release.set()
        stuck_client, healthy_client = hub.add(stuck.send), hub.add(healthy.send)
        tasks = [asyncio.create_task(c.write_forever()) for c in (stuck_client, healthy_client)]
        for n in range(20):
            hub.broadcast(alert(n))
            await asyncio.sleep(0)
        await asyncio.wait_for(stuck_client.closed.wait(), 5)
        while sum(len(f) for f in healthy.frames) < 20:
            await asyncio.sleep(0)
        healthy_client.drop("done")
        for task in tasks:
            task.cancel()
        return stuck_client, healthy

    stuck_client, healthy = run(scenario())
    assert stuck_client.close_reason == "backlog of alerts overflowed"
    assert [m["id"] for frame in healthy.frames for m in frame] == [f"{n}-0" for n in range(20)]


def test_a_send_that_stalls_past_the_timeout_drops_the_client():
    async def scenario():
        hub = Hub(redis=None, max_backlog=5, send_timeout=0.05)
        stuck = BlockedSocket()
        client = hub.add(stuck.send)
        writer = asyncio.create_task(client.write_forever())
        hub.broadcast(alert(1))
        await asyncio.wait_for(client.closed.wait(), 5)
        await writer
        return client

    assert run(scenario()).close_reason == "send timed out"


def test_filters_route_only_matching_series():
    wanted = Filter(commodity=frozenset({"cabai-rawit-merah"}), market=frozenset({"pasar-b"}))
    assert wanted.matches(orjson.loads(price("pasar-b", 1)))
    assert not wanted.matches(orjson.loads(price("pasar-a", 1)))
    assert Filter().matches(orjson.loads(price("pasar-a", 1)))


def test_a_snapshot_goes_out_before_queued_messages_and_drops_older_prices():
    async def scenario():
        socket = BlockedSocket()
        client = Client(socket.send, max_backlog=10, send_timeout=5)
        client.offer_price("cabai/pasar-a", '{"old":1}')
        client.offer('{"alert":1}')
        client.put_snapshot(['{"snapshot":1}'])
        return await socket.read(client, asyncio.create_task(client.write_forever()), 1)

    assert run(scenario()) == [[{"snapshot": 1}, {"alert": 1}]]


def test_a_new_snapshot_replaces_an_unsent_one_so_a_client_holds_at_most_one():
    async def scenario():
        socket = BlockedSocket()
        client = Client(socket.send, max_backlog=10, send_timeout=5)
        writer = asyncio.create_task(client.write_forever())
        client.put_snapshot(['{"snapshot":0}'])
        await asyncio.sleep(0)  # the writer takes the first snapshot and blocks on the socket
        for n in range(1, 400):
            client.put_snapshot([f'{{"snapshot":{n}}}', f'{{"missed":{n}}}'])
        client.offer('{"alert":1}')
        return await socket.read(client, writer, 2)

    assert run(scenario()) == [[{"snapshot": 0}], [{"snapshot": 399}, {"missed": 399}, {"alert": 1}]]
