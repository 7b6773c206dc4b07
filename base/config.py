"""Configuration: every setting is an environment variable with a documented default, read once.

``Settings.from_env()`` is called at process start; everything else receives the ``Settings``
object. The README's table of environment variables is generated from ``ENVIRONMENT``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# name -> (default, meaning); the single source of truth for the README table too.
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "REDIS_URL": ("", "Redis to use (redis://, or rediss:// for TLS; user and password in the URL); when "
                      "empty, `pasarwatch up` starts an embedded redis-server with a password, and "
                      "other commands use the running one's (DATA_DIR/redis.url)"),
    "PASARWATCH_DATA_DIR": ("var", "data directory (0700, or `--data-dir`): the embedded Redis's files and "
                                   "password, and redis.url, the running `pasarwatch up`'s Redis URL (0600)"),
    "PASARWATCH_AUDIT_DIR": ("", "where the audit chain's key (audit.key, 0600) and its witnesses outside Redis "
                             "(audit.head, audit.breaks) live (default: the data directory)"),
    "PASARWATCH_HOST": ("127.0.0.1", "address the web server binds"),
    "PASARWATCH_PORT": ("8000", "port the web server binds"),
    "PASARWATCH_RULES_DIR": (str(PROJECT_ROOT / "rules"), "rule files (*.yaml) and catalog/ directory"),
    "PASARWATCH_PUBLIC_URL": ("", "dashboard URL used in notifications (default http://HOST:PORT)"),
    "PASARWATCH_MAX_BODY_BYTES": ("4194304", "largest accepted request body (413 above)"),
    "PASARWATCH_MAX_BATCH": ("10000", "most ticks in one request (413 above)"),
    "PASARWATCH_MAX_FUTURE_SKEW": ("300", "seconds a tick's ts may lie in the future"),
    "PASARWATCH_ENGINE_BATCH": ("500", "ticks the engine reads and commits per batch"),
    "PASARWATCH_REDIS_CLUSTER": ("false", "true: REDIS_URL names a node of a Redis Cluster, which then holds the "
                                 "data plane (ticks, state, alerts, prices); Telegram notifications then need "
                                 "RQ_REDIS_URL (RQ does not run on a cluster)"),
    "RQ_REDIS_URL": ("", "a standalone Redis for Telegram notifications: RQ's queue and the notification records, "
                         "groups, subscriptions, mutes and rate limits (default: the data Redis, REDIS_URL; on a "
                         "Redis Cluster there is no default and the worker refuses to start without it)"),
    "PASARWATCH_SILENCE_RETENTION_DAYS": ("90", "days an expired silence is kept for audit (and at most the newest "
                                          "10,000 expired ones); older ones are forgotten when silences change"),
    "PASARWATCH_PARTITIONS": ("8", "tick partitions (by commodity), each owned by one engine at a time: fixed when "
                              "a data directory's Redis is first written (a different value later is ignored, "
                              "with a warning); at most this many engines share the work"),
    "PASARWATCH_ENGINE_LEASE": ("5", "seconds an engine's hold on its partitions lasts unless renewed (about once a "
                                "second): the longest its partitions wait after it dies before another engine "
                                "takes them over"),
    "PASARWATCH_STALE_SWEEP": ("5", "seconds between stale-feed sweeps"),
    "PASARWATCH_RULES_POLL": ("1", "seconds between checks of the rule files for changes"),
    "PASARWATCH_HISTORY_LEN": ("2000", "price messages kept per series for the history API"),
    "PASARWATCH_TICKS_RETENTION_DAYS": ("30", "processed ticks older than this are trimmed from the stream"),
    "PASARWATCH_WS_QUEUE": ("1000", "alerts a slow /ws/prices client may have queued before it is dropped"),
    "PASARWATCH_WS_SEND_TIMEOUT": ("10", "seconds a /ws/prices send may take before the client is dropped"),
    "PASARWATCH_WS_PING": ("20", "seconds between WebSocket heartbeats (pings)"),
    "PASARWATCH_WS_SUBSCRIBES_PER_MINUTE": ("30", "subscribe messages one /ws/prices client may send per minute; "
                                            "past that each is answered with an error, not a snapshot"),
    "PASARWATCH_DEMO_SPEED": ("5", "demo feed: simulated days per second"),
    "PASARWATCH_PUBLIC_READ": ("true", "read APIs and /ws/prices open without a token (write APIs always need one)"),
    "PASARWATCH_ALLOWED_ORIGINS": ("", "comma-separated browser origins allowed on WebSockets besides the server's "
                                       "own ('*' = any)"),
    "PASARWATCH_DEVICE_RATE": ("2000", "ticks per second one device (token) may push, sustained"),
    "PASARWATCH_DEVICE_BURST": ("20000", "ticks one device may push at once before its rate applies"),
    "PASARWATCH_WS_MAX_PER_ADDRESS": ("256", "open WebSocket connections allowed per client address"),
    "PASARWATCH_ALLOWED_LATENESS": ("0", "seconds a tick may be older than its series' newest and still be scored "
                                         "as news (older: stored as history, not scored, never alerts)"),
    "PASARWATCH_DEADLETTER_LEN": ("10000", "ticks the engine could not process kept in pw:deadletter for replay "
                                           "(oldest dropped beyond)"),
    "PASARWATCH_ENGINE_STALL": ("30", "seconds the engine may make no progress on waiting ticks before /readyz "
                                      "says unready"),
    "PASARWATCH_READ_RATE": ("20", "read requests per second one client address may make without a token, "
                             "sustained (429 above; requests with a token are not counted)"),
    "PASARWATCH_READ_BURST": ("100", "read requests one client address may make at once without a token"),
    "PASARWATCH_READ_ADDRESSES": ("10000", "client addresses whose read rate is tracked; the least recently "
                                  "seen is forgotten first"),
    "PASARWATCH_REDIS_POOL": ("100", "Redis connections the web process may open; a request waits for a free one"),
    "PASARWATCH_REDIS_POOL_TIMEOUT": ("5", "seconds a request waits for a free Redis connection before it gets 503"),
    "TELEGRAM_BOT_TOKEN": ("", "bot token; without it notifications are recorded as not sent"),
    "TELEGRAM_BASE_URL": ("https://api.telegram.org/bot", "Bot API base URL (python-telegram-bot base_url)"),
    "TELEGRAM_WEBHOOK_SECRET": ("", "secret token Telegram sends with webhook updates"),
    "TELEGRAM_TIMEOUT": ("10", "seconds one Bot API request may take (connect, write, read)"),
    "PASARWATCH_NOTIFY_GROUP_WINDOW": ("5", "seconds during which alert events that carry no routing receivers "
                                       "(written before routing trees) are gathered into one digest; routed "
                                       "alerts follow routing.yaml's group_wait, group_interval and "
                                       "repeat_interval"),
    "PASARWATCH_NOTIFY_RETRY_INTERVALS": ("5,15,60,300,900", "seconds between retries of a send that met a "
                                          "network error or a 5xx; after the last one the notification fails"),
    "PASARWATCH_NOTIFY_LEASE": ("15", "seconds a worker's claim on a notification lasts unless renewed"),
    "PASARWATCH_NOTIFY_SWEEP": ("5", "seconds between sweeps for notifications whose worker died (the "
                                 "worker's sweep also flushes alert groups that are due while the engine is down)"),
    "PASARWATCH_MAX_TICK_AGE_DAYS": ("3650", "a tick older than this many days is refused (422 `too_old`): older "
                                     "than the history the system keeps; younger late ticks are stored as history"),
    "PASARWATCH_MAX_IMPORT_BYTES": ("104857600", "largest file upload to POST /api/v1/imports (413 above)"),
}


def is_true(text: str) -> bool:
    """A boolean setting's value: 1, true or yes (any case); anything else is false."""
    return text.lower() in ("1", "true", "yes")


def _env(name: str) -> str:
    return os.environ.get(name, ENVIRONMENT[name][0])


@dataclass(frozen=True)
class Settings:
    redis_url: str
    data_dir: Path
    audit_dir: Path
    host: str
    port: int
    rules_dir: Path
    public_url: str
    max_body_bytes: int
    max_batch: int
    max_future_skew: float
    engine_batch: int
    stale_sweep: float
    rules_poll: float
    history_len: int
    ticks_retention_days: float
    ws_queue: int
    ws_send_timeout: float
    ws_ping: float
    ws_subscribes_per_minute: int
    demo_speed: float
    public_read: bool
    allowed_origins: tuple[str, ...]
    device_rate: float
    device_burst: float
    ws_max_per_address: int
    read_rate: float
    read_burst: float
    read_addresses: int
    redis_pool: int
    redis_pool_timeout: float
    deadletter_len: int = 10_000
    allowed_lateness: float = 0.0
    engine_stall: float = 30.0
    max_tick_age_days: float = 3650.0
    max_import_bytes: int = 100 * 2**20
    partitions: int = 8
    engine_lease: float = 5.0
    redis_cluster: bool = False
    rq_redis_url: str = ""
    silence_retention_days: float = 90.0

    @property
    def notify_url(self) -> str | None:
        """The Redis of Telegram notifications and RQ: RQ_REDIS_URL, else the data Redis unless
        that is a cluster (RQ cannot run on one: rq/rq issues 1942 and 2021), else none."""
        if self.redis_cluster:
            # A node of the cluster itself would answer RQ with MOVED: none rather than that.
            return self.rq_redis_url if self.rq_redis_url and self.rq_redis_url != self.redis_url else None
        return self.rq_redis_url or self.redis_url

    @property
    def catalog_dir(self) -> Path:
        return self.rules_dir / "catalog"

    @classmethod
    def from_env(cls) -> Settings:
        host = _env("PASARWATCH_HOST")
        port = int(_env("PASARWATCH_PORT"))
        return cls(
            redis_url=_env("REDIS_URL"),
            data_dir=Path(_env("PASARWATCH_DATA_DIR")),
            audit_dir=Path(_env("PASARWATCH_AUDIT_DIR") or _env("PASARWATCH_DATA_DIR")),
            host=host,
            port=port,
            rules_dir=Path(_env("PASARWATCH_RULES_DIR")),
            public_url=_env("PASARWATCH_PUBLIC_URL") or f"http://{host}:{port}",
            max_body_bytes=int(_env("PASARWATCH_MAX_BODY_BYTES")),
            max_batch=int(_env("PASARWATCH_MAX_BATCH")),
            max_future_skew=float(_env("PASARWATCH_MAX_FUTURE_SKEW")),
            engine_batch=int(_env("PASARWATCH_ENGINE_BATCH")),
            stale_sweep=float(_env("PASARWATCH_STALE_SWEEP")),
            rules_poll=float(_env("PASARWATCH_RULES_POLL")),
            history_len=int(_env("PASARWATCH_HISTORY_LEN")),
            ticks_retention_days=float(_env("PASARWATCH_TICKS_RETENTION_DAYS")),
            ws_queue=int(_env("PASARWATCH_WS_QUEUE")),
            ws_send_timeout=float(_env("PASARWATCH_WS_SEND_TIMEOUT")),
            ws_ping=float(_env("PASARWATCH_WS_PING")),
            ws_subscribes_per_minute=int(_env("PASARWATCH_WS_SUBSCRIBES_PER_MINUTE")),
            demo_speed=float(_env("PASARWATCH_DEMO_SPEED")),
            public_read=is_true(_env("PASARWATCH_PUBLIC_READ")),
            allowed_origins=tuple(o.strip() for o in _env("PASARWATCH_ALLOWED_ORIGINS").split(",") if o.strip()),
            device_rate=float(_env("PASARWATCH_DEVICE_RATE")),
            device_burst=float(_env("PASARWATCH_DEVICE_BURST")),
            ws_max_per_address=int(_env("PASARWATCH_WS_MAX_PER_ADDRESS")),
            deadletter_len=int(_env("PASARWATCH_DEADLETTER_LEN")),
            allowed_lateness=float(_env("PASARWATCH_ALLOWED_LATENESS")),
            engine_stall=float(_env("PASARWATCH_ENGINE_STALL")),
            read_rate=float(_env("PASARWATCH_READ_RATE")),
            read_burst=float(_env("PASARWATCH_READ_BURST")),
            read_addresses=int(_env("PASARWATCH_READ_ADDRESSES")),
            redis_pool=int(_env("PASARWATCH_REDIS_POOL")),
            redis_pool_timeout=float(_env("PASARWATCH_REDIS_POOL_TIMEOUT")),
            max_tick_age_days=float(_env("PASARWATCH_MAX_TICK_AGE_DAYS")),
            max_import_bytes=int(_env("PASARWATCH_MAX_IMPORT_BYTES")),
            partitions=max(1, int(_env("PASARWATCH_PARTITIONS"))),
            engine_lease=max(1.0, float(_env("PASARWATCH_ENGINE_LEASE"))),
            redis_cluster=is_true(_env("PASARWATCH_REDIS_CLUSTER")),
            rq_redis_url=_env("RQ_REDIS_URL"),
            silence_retention_days=float(_env("PASARWATCH_SILENCE_RETENTION_DAYS")),
        )


def environment_table() -> str:
    """Markdown table of every environment variable, for the README."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, (default, meaning) in ENVIRONMENT.items():
        shown = default.replace(str(PROJECT_ROOT), ".") if default else "(empty)"
        rows.append(f"| `{name}` | `{shown}` | {meaning} |")
    return "\n".join(rows)


