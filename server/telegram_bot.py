"""The Telegram bot's edges: the webhook, long polling, webhook registration, and the
notifications API.

``routes`` (mounted by server/app.py; handlers use ``app.state.redis``, the data Redis,
``app.state.notify``, the notifications' Redis (None on a Redis Cluster without RQ_REDIS_URL:
then both routes answer 503), both asyncio clients, and ``app.state.catalog``):

- ``POST /telegram/webhook``: an update from Telegram. Without the header
  ``X-Telegram-Bot-Api-Secret-Token`` equal to TELEGRAM_WEBHOOK_SECRET it gets 403 and changes
  nothing (with no secret configured, every request gets 403). A body above
  ``MAX_UPDATE_BYTES`` gets 413 and one that is not an update as Telegram shapes it gets 400,
  naming the field; neither is looked at further. The update goes through
  ``workers.commands.handle_update`` and its replies are sent straight away through the Bot
  API, not through RQ: they answer a person who is waiting, must not queue behind a burst of
  alert notifications, and a lost reply costs only a retyped command (it is logged).
- ``GET /api/v1/notifications?state=&limit=``: notification records, newest first, and the count
  per state.

``run_polling()`` (``pasarwatch bot --poll``) feeds the same handler from getUpdates;
``set_webhook(url)`` registers the webhook with the secret.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from typing import Any

import orjson
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram.error import NetworkError, RetryAfter, TelegramError

from base.redis_url import async_cluster_client, separate_servers
from server import params
from server.access import requires
from server.api import ORJSONResponse, error
from workers import notifications as store
from workers.commands import Reply, handle_update
from workers.settings import NotifySettings, get_settings
from workers.telegram import POLL_TIMEOUT, close_bot, make_bot, perform, retry_after_seconds
from workers.updates import BadUpdate

log = logging.getLogger("pasarwatch.bot")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message", "callback_query"]
MAX_LIMIT = 1000
# Telegram's updates are a few kilobytes (a message is at most 4,096 characters): anything near
# this is not from Telegram, and is refused before it is read whole.
MAX_UPDATE_BYTES = 1 << 20


def _settings(request: Request) -> NotifySettings:
    # server/app.py or a test may put its own on app.state; otherwise the environment's.
    return getattr(request.app.state, "notify_settings", None) or get_settings()


async def telegram_webhook(request: Request) -> Response:
    settings = _settings(request)
    given = request.headers.get(SECRET_HEADER, "")
    if not settings.webhook_secret or not hmac.compare_digest(given.encode(), settings.webhook_secret.encode()):
        return error(403, SECRET_HEADER, "forbidden", "wrong or missing webhook secret token")
    declared = params.whole_number(request.headers.get("content-length"))
    if declared is not None and declared > MAX_UPDATE_BYTES:
        return _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_UPDATE_BYTES:
            return _too_large()
    try:
        update = orjson.loads(body)
    except orjson.JSONDecodeError:
        return error(400, "body", "bad_json", "the body is not JSON")
    if not isinstance(update, dict):
        return error(400, "body", "bad_update", "an update is a JSON object")
    notify = request.app.state.notify
    if notify is None:
        return _no_notifications()
    try:
        replies = await handle_update(update, request.app.state.redis, request.app.state.catalog,
                                      partitions=request.app.state.partitions, notify=notify)
    except BadUpdate as exc:
        return error(400, exc.field, "bad_update", exc.detail)
    await send_replies(settings, replies)
    return ORJSONResponse({"ok": True})


def _no_notifications() -> Response:
    return error(503, "RQ_REDIS_URL", "notifications_unavailable",
                 "on a Redis Cluster, Telegram notifications need a standalone Redis of their own (RQ_REDIS_URL)")


def _too_large() -> Response:
    return error(413, "body", "body_too_large", f"an update is at most {MAX_UPDATE_BYTES} bytes")


async def send_replies(settings: NotifySettings, replies: list[Reply]) -> None:
    """Make the Bot API calls; a failure is logged, never raised (Telegram would redeliver)."""
    if not replies:
        return
    if not settings.has_token:
        log.warning("TELEGRAM_BOT_TOKEN is not set: %d bot repl(ies) not sent", len(replies))
        return
    bot = make_bot(settings)
    try:
        await _perform_all(bot, replies)
    finally:
        await close_bot(bot)


async def _perform_all(bot: Any, replies: list[Reply]) -> None:
    for reply in replies:
        try:
            await perform(bot, reply)
        except TelegramError as exc:
            log.warning("bot reply %s to %s failed: %s", reply.method, reply.params.get("chat_id"), exc)


@requires("read")
async def list_notifications(request: Request) -> Response:
    state = request.query_params.get("state") or None
    if state is not None and state not in store.STATES:
        return error(422, "state", "bad_query", f"state must be one of {', '.join(store.STATES)}")
    limit = params.whole_number(request.query_params.get("limit") or "100")
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        return error(422, "limit", "bad_query", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    redis = request.app.state.notify
    if redis is None:
        return _no_notifications()
    ids: Any = await redis.zrevrange(store.INDEX, 0, store.INDEX_CAP)  # bytes: redis-py cannot know
    async with redis.pipeline(transaction=False) as pipe:
        for nid in ids:
            pipe.hgetall(store.record_key(nid.decode()))
        hashes = await pipe.execute() if ids else []
    every = store.listing(hashes)
    counts = {name: sum(1 for n in every if n["state"] == name) for name in store.STATES}
    shown = [n for n in every if state is None or n["state"] == state][:limit]
    return ORJSONResponse({"notifications": shown, "counts": counts})


routes: list[Route] = [
    Route("/telegram/webhook", telegram_webhook, methods=["POST"]),
    Route("/api/v1/notifications", list_notifications, methods=["GET"]),
]


# --- command-line helpers ---------------------------------------------------------------------------

def run_polling(settings: NotifySettings | None = None, catalog: Any = None,
                stop: threading.Event | None = None, poll_timeout: int = POLL_TIMEOUT,
                data_url: str | None = None, data_cluster: bool = False) -> None:
    """Long polling (``pasarwatch bot --poll``): getUpdates in a loop, through the same handlers
    as the webhook, until ``stop`` is set (checked between polls) or the process is interrupted.
    The webhook is removed first: Telegram refuses getUpdates while one is set. ``settings``'
    Redis is the notifications'; ``data_url`` the data Redis's (default: the same; a node of a
    Redis Cluster with ``data_cluster``)."""
    settings = settings or get_settings()
    if not settings.has_token:
        raise RuntimeError("TELEGRAM_BOT_TOKEN is not set")
    if catalog is None:
        from base.catalog import load_catalog

        catalog = load_catalog(settings.catalog_dir)
    asyncio.run(_poll(settings, catalog, stop or threading.Event(), poll_timeout, data_url, data_cluster))


async def _poll(settings: NotifySettings, catalog: Any, stop: threading.Event, poll_timeout: int,
                data_url: str | None, data_cluster: bool) -> None:
    redis = Redis.from_url(settings.redis_url)
    if data_url is None or not separate_servers(settings.redis_url, data_url, data_cluster):
        data = redis
    else:
        data = async_cluster_client(data_url, pool_size=4) if data_cluster else Redis.from_url(data_url)
    bot = make_bot(settings, polling=True)
    backoff = 1.0
    try:
        await bot.delete_webhook()
        offset: int | None = None
        while not stop.is_set():
            try:
                updates = await bot.get_updates(offset=offset, timeout=poll_timeout,
                                                allowed_updates=ALLOWED_UPDATES)
            except RetryAfter as exc:
                await asyncio.sleep(retry_after_seconds(exc))
                continue
            except NetworkError as exc:
                log.warning("getUpdates failed (%s); retrying in %.0fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            backoff = 1.0
            for update in updates:
                try:
                    replies = await handle_update(update.to_dict(), data, catalog, notify=redis)
                except BadUpdate as exc:
                    log.warning("update %s skipped: %s: %s", update.update_id, exc.field, exc.detail)
                    replies = []
                await _perform_all(bot, replies)
                offset = update.update_id + 1
    finally:
        await close_bot(bot)
        if data is not redis:
            await data.aclose()
        await redis.aclose()


def set_webhook(url: str, settings: NotifySettings | None = None) -> bool:
    """Register ``url`` (https, ending in /telegram/webhook) with Telegram, with the secret."""
    settings = settings or get_settings()
    if not settings.has_token:
        raise RuntimeError("TELEGRAM_BOT_TOKEN is not set")
    if not settings.webhook_secret:
        raise RuntimeError("TELEGRAM_WEBHOOK_SECRET is not set: the webhook would refuse every update")

    async def register() -> bool:
        bot = make_bot(settings)
        try:
            return await bot.set_webhook(url=url, secret_token=settings.webhook_secret,
                                         allowed_updates=ALLOWED_UPDATES)
        finally:
            await close_bot(bot)

    return asyncio.run(register())
