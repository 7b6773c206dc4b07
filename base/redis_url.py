"""Where a command finds Redis: the one place every ``pasarwatch`` command asks.

In order:

1. ``--data-dir DIR`` on the command line: the Redis of the ``pasarwatch up`` running with that
   data directory, read from ``DIR/redis.url``;
2. ``REDIS_URL``, when set;
3. the Redis of the ``pasarwatch up`` running with ``PASARWATCH_DATA_DIR`` (default ``var``),
   read from ``var/redis.url``.

``pasarwatch up`` writes ``redis.url`` (owner-only, 0600, with the password of the embedded
Redis) when it starts and removes it when it stops cleanly. A file left by a killed launcher
names a Redis that no longer answers; :func:`connect` says so in one line.

>>> redact("redis://:s3cret@127.0.0.1:6380/0")
'redis://:***@127.0.0.1:6380/0'
>>> redact("redis://pasarwatch:s3cret@redis.example:6379/0"), redact("redis://127.0.0.1:6379/0")
('redis://pasarwatch:***@redis.example:6379/0', 'redis://127.0.0.1:6379/0')
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

URL_FILE = "redis.url"
CONNECT_TIMEOUT = 3.0


class RedisUnavailable(Exception):
    """No usable Redis: the message is one line saying what was tried and what to do."""


@dataclass(frozen=True)
class Located:
    url: str
    origin: str  # where the URL came from, for messages: "REDIS_URL" or the url file's path


def url_file(data_dir: Path) -> Path:
    return Path(data_dir) / URL_FILE


def redact(url: str) -> str:
    """The URL with its password replaced, for messages and logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def locate(data_dir: Path, env_url: str, data_dir_given: bool = False) -> Located:
    """The Redis URL a command should use (see the module's docstring for the order)."""
    path = url_file(data_dir)
    if env_url and not data_dir_given:
        return Located(env_url, "REDIS_URL")
    try:
        url = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        url = ""
    except OSError as exc:
        raise RedisUnavailable(f"cannot read {path}: {exc.strerror}; run the command as the user "
                               f"that runs `pasarwatch up`") from None
    if url:
        return Located(url, str(path))
    hint = ""
    if url_file(Path(data_dir) / "demo").exists():
        hint = f" (a demo runs with --data-dir {Path(data_dir) / 'demo'})"
    raise RedisUnavailable(
        f"no Redis: REDIS_URL is not set and no `pasarwatch up` is running with data directory "
        f"{Path(data_dir).resolve()} (no {path}){hint}; start `pasarwatch up`, give --data-dir "
        f"of the one running, or set REDIS_URL")


def connect(located: Located, timeout: float = CONNECT_TIMEOUT) -> redis.Redis:
    """A client that has answered PING; otherwise :class:`RedisUnavailable` naming the cause."""
    try:
        client = redis.Redis.from_url(located.url, socket_connect_timeout=timeout, socket_timeout=timeout)
    except ValueError as exc:
        raise RedisUnavailable(f"{located.origin} is not a Redis URL ({exc}); "
                               f"use redis://, rediss:// or unix://") from None
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        client.close()
        where = f"Redis at {redact(located.url)} (from {located.origin})"
        if urlsplit(located.url).password:
            raise RedisUnavailable(f"{where} refused the user or password: {_reason(exc)}; "
                                   f"fix them in the URL") from None
        raise RedisUnavailable(f"{where} needs a password: {_reason(exc)}; put it in the URL "
                               f"(redis://:PASSWORD@host:port/0)") from None
    except redis.ResponseError as exc:  # an ACL user without PING, a Redis that is loading
        client.close()
        raise RedisUnavailable(f"Redis at {redact(located.url)} (from {located.origin}) refused PING: "
                               f"{_reason(exc)}") from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        client.close()
        raise RedisUnavailable(f"{_unreachable(located)}: {_reason(exc)}") from None
    return client


def _unreachable(located: Located) -> str:
    where = f"no Redis answers at {redact(located.url)} (from {located.origin})"
    if located.origin == "REDIS_URL":
        return where + "; start that Redis or fix REDIS_URL"
    return (where + "; the `pasarwatch up` that wrote it has stopped: start it again "
            "(or set REDIS_URL)")


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def write_url_file(data_dir: Path, url: str) -> Path:
    """Write ``redis.url`` readable by the owner only; replaced atomically, never world-readable."""
    path = url_file(data_dir)
    temporary = path.with_name(f".{URL_FILE}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file left by a crash
        os.write(fd, (url + "\n").encode())
    finally:
        os.close(fd)
    os.replace(temporary, path)
    return path


def remove_url_file(data_dir: Path, url: str) -> None:
    """Remove ``redis.url`` if it still names ``url`` (a later launcher may have replaced it)."""
    path = url_file(data_dir)
    try:
        if path.read_text(encoding="utf-8").strip() == url:
            path.unlink()
    except FileNotFoundError:
        pass


def data_client(url: str, cluster: bool, **options: object) -> Any:
    """A sync client of the data plane: redis-py's cluster client when ``cluster`` (the URL
    names any node; the others are discovered), else a plain one."""
    if cluster:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, **options)


def separate_servers(notify_url: str, data_url: str, data_cluster: bool) -> bool:
    """Whether the notifications' Redis is another server than the data's (always beside a
    cluster, which RQ cannot use)."""
    return data_cluster or notify_url != data_url


def notify_client(notify_url: str | None, data_url: str, data: Any, **options: object) -> redis.Redis | None:
    """A sync client of the notifications' Redis (``Settings.notify_url``): ``data`` itself when
    that is the same Redis, None when there is none (a cluster without RQ_REDIS_URL)."""
    if notify_url is None:
        return None
    if not separate_servers(notify_url, data_url, is_cluster(data)):
        return data
    return redis.Redis.from_url(notify_url, **options)


def async_cluster_client(url: str, pool_size: int) -> Any:
    """The web process's client of a Redis Cluster data plane (redis.asyncio), at most
    ``pool_size`` connections per node."""
    from redis.asyncio.cluster import RedisCluster

    return RedisCluster.from_url(url, max_connections=pool_size, socket_timeout=5, socket_connect_timeout=2)


def is_cluster(client: Any) -> bool:
    """Is ``client`` redis-py's cluster client (sync), rather than a plain one?"""
    return hasattr(client, "get_nodes")


def disconnect(client: Any) -> None:
    """Close every pooled connection (of every node of a cluster): a half-read reply must not
    reach the next user of the client."""
    if is_cluster(client):
        for node in client.get_nodes():
            node.redis_connection.connection_pool.disconnect()
    else:
        client.connection_pool.disconnect()
