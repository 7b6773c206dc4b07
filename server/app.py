"""The web process: a Starlette app that accepts ticks and serves prices, alerts and the dashboard."""
from __future__ import annotations

import contextlib
import logging

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError, RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from base import keys
from base.catalog import load_catalog
from base.redis_url import async_cluster_client, separate_servers
from server import (api, audit, deadletters, demo, devices, forecast_api, imports, metrics, openapi, references_api,
                    silences, sockets, telegram_bot)
from base.config import PROJECT_ROOT, Settings
from server.access import Gate, count_refusal
from server.hub import Hub
from server.ingest import Ingestor
from server.responses import error
from stores.partitions import partition_count_async

log = logging.getLogger("pasarwatch.web")
STATIC_DIR = PROJECT_ROOT / "static"


async def index(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html")


async def redis_unavailable(request: Request, exc: Exception) -> Response:
    # Nothing was accepted: the client must retry. 503, never 500, never a hang.
    return error(503, "store", "unavailable", f"store unavailable, retry: {type(exc).__name__}")


async def bad_query(request: Request, exc: api.QueryError) -> Response:
    try:
        await count_refusal(request.app.state.redis, "bad_query")
    except RedisError:
        pass  # the 422 matters more than its count
    return error(422, exc.field, "bad_query", str(exc))


def store_client(url: str, retry_once: bool, pool_size: int = 100, pool_timeout: float = 5.0) -> Redis:
    """The async Redis client of the web process: a stalled Redis is a 503 within seconds.

    ``retry_once``: a command that meets a broken connection is sent once more on a new one.
    After Redis restarts, every pooled connection is broken, and without this the first request
    to take each would get a 503 although Redis is back. A timeout is never retried (the
    command may have run; the caller hears 503 and decides).

    The pool blocks: with all ``pool_size`` connections busy, a request waits up to
    ``pool_timeout`` seconds for one to come free (a 503 after that), where the default pool
    would refuse it at once, so a burst of readers delays the devices instead of failing them.
    """
    retry = Retry(NoBackoff(), 1 if retry_once else 0, supported_errors=(RedisConnectionError,))
    pool = BlockingConnectionPool.from_url(
        url, max_connections=pool_size, timeout=pool_timeout, socket_timeout=5,
        socket_connect_timeout=2, health_check_interval=10, retry_on_timeout=False, retry=retry)
    return Redis.from_pool(pool)


def create_app(settings: Settings) -> Starlette:
    catalog = load_catalog(settings.catalog_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        if settings.redis_cluster:
            redis = async_cluster_client(settings.redis_url, settings.redis_pool)
        else:
            redis = store_client(settings.redis_url, retry_once=True, pool_size=settings.redis_pool,
                                 pool_timeout=settings.redis_pool_timeout)
        # The hub's subscription has a client of its own that never retries behind its back:
        # the hub must see every lost connection, to tell its clients to resync. On a cluster it
        # is a plain client of the node REDIS_URL names: classic pub/sub reaches every node.
        feed = store_client(settings.redis_url, retry_once=False)
        hub = Hub(feed, settings.ws_queue, settings.ws_send_timeout)
        app.state.redis = redis
        # Telegram's side (bot webhook, notifications API, its /metrics histogram) lives in the
        # notifications' Redis: the same as the data's unless RQ_REDIS_URL names another.
        notify_url = settings.notify_url
        notify = None
        if notify_url is not None and separate_servers(notify_url, settings.redis_url, settings.redis_cluster):
            notify = store_client(notify_url, retry_once=True, pool_size=settings.redis_pool,
                                  pool_timeout=settings.redis_pool_timeout)
        app.state.notify = notify if notify is not None else (None if notify_url is None else redis)
        app.state.hub = hub
        # P is fixed in Redis by the first process to write: every reader of per-partition keys
        # (prices, alerts, counters, progress) and the tick appender use these.
        app.state.partitions = keys.partitions(await partition_count_async(redis, settings.partitions))
        app.state.ingestor = Ingestor(redis, catalog, settings.max_batch, settings.max_future_skew,
                                      audit.Witness(audit.AuditFiles(settings.audit_dir)), app.state.partitions,
                                      settings.allowed_lateness, settings.max_tick_age_days * 86400)
        hub.start()
        try:
            yield
        finally:
            await hub.stop()
            await feed.aclose()
            if notify is not None:
                await notify.aclose()
            await redis.aclose()

    routes = [
        Route("/", index),
        Route("/healthz", api.healthz),
        Route("/readyz", api.readyz),
        Route("/metrics", metrics.metrics),
        Route("/api/v1/ticks", api.post_ticks, methods=["POST"]),
        Route("/api/v1/catalog", api.get_catalog),
        Route("/api/v1/series", api.get_series),
        Route("/api/v1/series/{commodity}/{market}/history", api.get_history),
        Route("/api/v1/alerts", api.get_alerts),
        Route("/api/v1/rules", api.get_rules),
        Route("/api/v1/sources", api.get_sources),
        Route("/api/v1/audit/verify", audit.verify_endpoint),
        WebSocketRoute("/ws/prices", sockets.prices_endpoint),
        WebSocketRoute("/ws/ingest", sockets.ingest_endpoint),
        *forecast_api.routes,
        *references_api.routes,
        *openapi.routes,
        *devices.routes,
        *telegram_bot.routes,
        *silences.routes,
        *deadletters.routes,
        *demo.routes,
        *imports.routes,
        Mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        # Starlette passes a handler only the exceptions of its class (QueryError to bad_query).
        exception_handlers={RedisError: redis_unavailable, api.QueryError: bad_query},  # type: ignore[dict-item]
    )
    app.state.settings = settings
    app.state.gate = Gate(settings.public_read, settings.device_rate, settings.device_burst,
                          settings.ws_max_per_address, settings.allowed_origins,
                          settings.read_rate, settings.read_burst, settings.read_addresses)
    app.state.catalog = catalog
    app.state.catalog_json = orjson.dumps(catalog.to_json())
    return app
