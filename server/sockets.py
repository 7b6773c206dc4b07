"""WebSocket endpoints: ``/ws/prices`` (live prices and alerts) and ``/ws/ingest`` (devices).

A socket opened with a token lives no longer than the token: it is looked up again every
``TOKEN_RECHECK`` seconds, and the socket is closed with 1008 once it is revoked.
"""
from __future__ import annotations

import asyncio
import logging

import orjson
from redis.exceptions import RedisError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from starlette.responses import Response

from server import auth, params

from base import keys
from server.access import REFUSED, TokenBucket, authorize, presented_token
from server.api import alert_order, count_refusals, read_alerts
from server.hub import Filter
from server.ticks import BodyError, parse_body
from stores import partitioned

log = logging.getLogger("pasarwatch.ws")

MAX_CLIENT_MESSAGE = 64 * 1024
MISSED_ALERTS_LIMIT = 5000
CLOSE_TRY_AGAIN = 1013
CLOSE_POLICY = 1008
CLOSE_UNSUPPORTED = 1003
# Seconds between look-ups of an open socket's token: how long a revoked token may go on
# pushing or reading. One HGET per open authenticated socket per interval.
TOKEN_RECHECK = 1.0


class Refused(Exception):
    """The client broke the protocol: close the socket with this code and reason."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


async def receive_text(websocket: WebSocket) -> str:
    """The client's next text message.

    Raises WebSocketDisconnect when the client left, and Refused(1003) on a binary frame:
    both protocols are JSON text, and Starlette's own receive_text would hand back None.
    """
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is None:
        raise Refused(CLOSE_UNSUPPORTED, "binary frames are not supported: send JSON text")
    return text


async def close_quietly(websocket: WebSocket, code: int, reason: str) -> None:
    try:
        await websocket.close(code=code, reason=reason[:120])
    except (RuntimeError, WebSocketDisconnect):  # already closed, or the client is gone
        pass


async def until_revoked(websocket: WebSocket) -> None:
    """Return once the token this socket was opened with no longer names a live credential.

    A store that cannot answer is not a revocation: the socket stays until it can.
    """
    token = presented_token(websocket)
    redis = websocket.app.state.redis
    while True:
        await asyncio.sleep(TOKEN_RECHECK)
        try:
            if await auth.lookup(redis, token) is None:
                return
        except RedisError:
            continue


def error_message(reason: str) -> str:
    return orjson.dumps({"type": "error", "reason": reason}).decode()


def parse_subscribe(message: dict) -> tuple[Filter, str | None]:
    """Read a subscribe message into a Filter and the last alert id seen (or raise ValueError)."""
    lists = {}
    for name in ("commodity", "province", "market"):
        value = message.get(name) or []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"{name} must be a list of ids")
        lists[name] = frozenset(value)
    since = message.get("since")
    if since is not None:
        since = params.stream_id(str(since))
        if since is None:
            raise ValueError("since must be an alert id such as 1719800001234-0")
    return Filter(**lists), since


async def snapshot_messages(redis, partitions: list[keys.Partition], wanted: Filter, since: str | None) -> list[str]:
    """The snapshot (latest prices and firing alerts of every partition), then alerts missed
    since ``since``."""
    prices = [orjson.loads(raw) for raw in await partitioned.hash_values(redis, partitions, "latest")]
    firing = [orjson.loads(raw) for raw in await partitioned.hash_values(redis, partitions, "firing")]
    snapshot = {
        "type": "snapshot",
        "prices": [p for p in prices if wanted.matches(p)],
        "alerts": sorted((a for a in firing if wanted.matches(a)), key=alert_order),
    }
    texts = [orjson.dumps(snapshot).decode()]
    if since is not None:
        missed = await read_alerts(redis, partitions, since, MISSED_ALERTS_LIMIT)
        texts.extend(orjson.dumps(a).decode() for a in missed if wanted.matches(a))
    return texts


async def admit(websocket: WebSocket, action: str):
    """Check origin, token and the per-address connection limit before accepting.

    Returns the credential (None for a public read) or False after refusing the handshake
    (the client sees HTTP 403; the reason is counted in pw:stats:refused).
    """
    gate = websocket.app.state.gate
    redis = websocket.app.state.redis
    address = websocket.client.host if websocket.client else "?"
    if not gate.origin_allowed(websocket):
        await redis.hincrby(REFUSED, "origin_not_allowed", 1)
        await websocket.close(code=CLOSE_POLICY)
        return False
    if gate.connections.get(address, 0) >= gate.ws_per_address:
        await redis.hincrby(REFUSED, "too_many_connections", 1)
        await websocket.close(code=CLOSE_TRY_AGAIN)
        return False
    credential = await authorize(websocket, action)
    if isinstance(credential, Response):
        await websocket.close(code=CLOSE_POLICY)
        return False
    return credential


class _Counted:
    """Counts a client address's open connections for as long as the block runs."""

    def __init__(self, gate, websocket: WebSocket):
        self.gate = gate
        self.address = websocket.client.host if websocket.client else "?"

    def __enter__(self):
        self.gate.connections[self.address] = self.gate.connections.get(self.address, 0) + 1

    def __exit__(self, *exc):
        left = self.gate.connections.get(self.address, 1) - 1
        if left:
            self.gate.connections[self.address] = left
        else:
            self.gate.connections.pop(self.address, None)


async def prices_endpoint(websocket: WebSocket) -> None:
    credential = await admit(websocket, "read")
    if credential is False:
        return
    with _Counted(websocket.app.state.gate, websocket):
        await _serve_prices(websocket, credential)


async def _serve_prices(websocket: WebSocket, credential) -> None:
    hub = websocket.app.state.hub
    await websocket.accept()
    client = hub.add(websocket.send_text)
    writer = asyncio.create_task(client.write_forever())
    reader = asyncio.create_task(_read_subscriptions(websocket, client))
    closed = asyncio.create_task(client.closed.wait())
    tasks = {writer, reader, closed}
    revoked = None
    if credential is not None:  # an anonymous public reader has nothing to revoke
        revoked = asyncio.create_task(until_revoked(websocket))
        tasks.add(revoked)
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.remove(client)
        for task in tasks:
            task.cancel()
        refused = reader.exception() if reader.done() and not reader.cancelled() else None
        if isinstance(refused, Refused):
            await close_quietly(websocket, refused.code, refused.reason)
        elif revoked is not None and revoked.done() and not revoked.cancelled():
            await close_quietly(websocket, CLOSE_POLICY, "token revoked")
        elif client.close_reason not in ("", "closed", "client went away"):
            log.info("dropping /ws/prices client: %s", client.close_reason)
            await close_quietly(websocket, CLOSE_TRY_AGAIN, client.close_reason)


async def _read_subscriptions(websocket: WebSocket, client) -> None:
    redis = websocket.app.state.redis
    per_minute = websocket.app.state.settings.ws_subscribes_per_minute
    # Each subscribe reads every latest price and firing alert: a client may not make the
    # server do that more than per_minute times a minute (a burst of per_minute at once).
    subscribes = TokenBucket(rate=per_minute / 60, burst=per_minute)
    try:
        while True:
            raw = await receive_text(websocket)
            if len(raw) > MAX_CLIENT_MESSAGE:
                client.offer(error_message("message too large"))
                continue
            try:
                message = orjson.loads(raw)
                if not isinstance(message, dict) or message.get("type") != "subscribe":
                    raise ValueError("expected {\"type\": \"subscribe\", ...}")
                wanted, since = parse_subscribe(message)
            except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
                client.offer(error_message(str(exc)))
                continue
            if subscribes.take(1):
                client.offer(error_message(f"too many subscribes: at most {per_minute} a minute"))
                continue
            client.filter = wanted
            try:
                client.put_snapshot(await snapshot_messages(redis, websocket.app.state.partitions, wanted, since))
            except RedisError:
                client.offer(error_message("store unavailable, retry"))
    except WebSocketDisconnect:
        client.drop("client went away")
    except RuntimeError:  # receive after the socket closed
        client.drop("client went away")


async def ingest_endpoint(websocket: WebSocket) -> None:
    """Devices push ticks: each message (one tick, an array or NDJSON) gets one ack message.

    A message may carry ``{"ref": ..., "ticks": [...]}`` so the device can match acks to sends.
    """
    credential = await admit(websocket, "ingest")
    if credential is False:
        return
    with _Counted(websocket.app.state.gate, websocket):
        await _serve_ingest(websocket, credential)


async def _serve_ingest(websocket: WebSocket, credential) -> None:
    await websocket.accept()
    serving = asyncio.create_task(_ingest_messages(websocket, credential))
    revoked = asyncio.create_task(until_revoked(websocket))
    try:
        await asyncio.wait({serving, revoked}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        was_revoked = revoked.done() and not revoked.cancelled()
        revoked.cancel()
        if was_revoked and not serving.done():
            # Close first, so that a message being ingested now is the last one (its ack finds
            # the socket closed) and one waiting to be read is never read.
            await close_quietly(websocket, CLOSE_POLICY, "token revoked")
            await asyncio.wait({serving}, timeout=websocket.app.state.settings.ws_send_timeout)
        serving.cancel()
    if serving.done() and not serving.cancelled():
        try:
            serving.result()
        except Refused as refused:
            await close_quietly(websocket, refused.code, refused.reason)


async def _ingest_messages(websocket: WebSocket, credential) -> None:
    ingestor = websocket.app.state.ingestor
    bucket = websocket.app.state.gate.bucket(credential)
    send_timeout = websocket.app.state.settings.ws_send_timeout
    try:
        while True:
            raw = await receive_text(websocket)
            if websocket.application_state is not WebSocketState.CONNECTED:
                return  # read after we closed (a revoked token): not to be ingested
            ref = None
            try:
                items = parse_body(raw.encode(), "")
                if len(items) == 1 and isinstance(items[0], dict) and "ticks" in items[0]:
                    ref = items[0].get("ref")
                    items = items[0]["ticks"] if isinstance(items[0]["ticks"], list) else [items[0]["ticks"]]
                refused = await ingestor.admit(items, credential, bucket)
                if refused:
                    status, body, _ = refused
                else:
                    status, body = await ingestor.ingest(items, credential)
            except BodyError as exc:
                status, body = 422, {"errors": [exc.as_error()]}
            except RedisError:
                status, body = 503, {"errors": [{"index": None, "field": "body", "reason": "unavailable",
                                                 "detail": "store unavailable: nothing was accepted, retry"}]}
            if 400 <= status < 500 and status != 429:  # 429: admit counted it already
                try:
                    await count_refusals(websocket.app.state.redis, body)
                except RedisError:
                    pass  # counting must not cost the device its ack
            ack = orjson.dumps({"type": "ack", "ref": ref, "status": status, **body}).decode()
            try:
                await asyncio.wait_for(websocket.send_text(ack), send_timeout)
            except asyncio.TimeoutError:  # a device that does not read its acks
                await close_quietly(websocket, CLOSE_TRY_AGAIN, "acks not read")
                return
    except (WebSocketDisconnect, RuntimeError):
        return
