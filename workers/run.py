"""The notification worker process: an RQ worker on queue ``notifications``, with RQ's scheduler
(429 reschedules, retry backoff and quiet-hour releases are scheduled jobs) and the sweep that
recovers notifications whose worker died and flushes alert groups that are due (the engine's
dispatcher flushes them too, each loop).

    python -m workers.run            # what `pasarwatch worker` runs; finds Redis as every command
                                     # does (base/redis_url.py), or --url

Plain ``rq worker notifications --with-scheduler --url $REDIS_URL`` also delivers; then only
the engine's dispatcher runs the recovery sweep.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import threading

import redis
from rq import Queue, Worker

from base.config import Settings
from base.redis_url import RedisUnavailable, locate
from workers.delivery import worker_catalog
from workers.dispatch import QUEUE, data_redis, maybe_recover
from workers.settings import NotifySettings, get_settings, install
from workers.telegram import warm_up

log = logging.getLogger("pasarwatch.worker")


def sweep_forever(settings: NotifySettings, stop: threading.Event) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    while not stop.wait(settings.sweep_interval):
        try:
            maybe_recover(client, settings, data_redis(settings))
        except redis.RedisError as exc:  # Redis restarting: the next sweep tries again
            log.warning("recovery sweep failed: %s", exc)


def main(redis_url: str | None = None, burst: bool = False, name: str | None = None,
         data_url: str | None = None) -> int:
    """Run the worker until stopped (SIGINT/SIGTERM: RQ's warm shutdown); ``redis_url``, the
    notifications' Redis, overrides RQ_REDIS_URL and REDIS_URL; ``data_url``, the data Redis
    (where silences are), overrides REDIS_URL."""
    logging.basicConfig(level=os.environ.get("PASARWATCH_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = get_settings()
    if redis_url:
        settings = dataclasses.replace(settings, redis_url=redis_url)
    if data_url:
        settings = dataclasses.replace(settings, data_url=data_url)
    install(settings)
    # Made before RQ forks a work horse per job, so each job finds them ready.
    worker_catalog(settings.catalog_dir)
    warm_up()
    if not settings.has_token:
        log.warning("TELEGRAM_BOT_TOKEN is not set: notifications are recorded as not sent")
    connection = redis.Redis.from_url(settings.redis_url)
    stop = threading.Event()
    sweeper = threading.Thread(target=sweep_forever, args=(settings, stop), name="recovery", daemon=True)
    sweeper.start()
    try:
        worker = Worker([Queue(QUEUE, connection=connection)], connection=connection, name=name)
        worker.work(with_scheduler=True, burst=burst)
    finally:
        stop.set()
    return 0


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None, help="the notifications' Redis URL (default: RQ_REDIS_URL, else "
                                                    "REDIS_URL, else the running `pasarwatch up`'s, from "
                                                    "DATA_DIR/redis.url)")
    parser.add_argument("--burst", action="store_true", help="stop once the queue is empty")
    parser.add_argument("--name", default=None, help="worker name (default: random)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    url = args.url or settings.rq_redis_url
    if not url and settings.redis_cluster:
        print("python -m workers.run: on a Redis Cluster, give the notifications a standalone Redis "
              "(RQ_REDIS_URL or --url): RQ does not run on a cluster", file=sys.stderr)
        return 2
    # The data Redis (where silences are): REDIS_URL, else the running `pasarwatch up`'s.
    data_url: str | None = settings.redis_url or None
    if not settings.redis_cluster:
        try:
            data_url = locate(settings.data_dir, settings.redis_url).url
        except RedisUnavailable as exc:
            if not url:
                print(f"python -m workers.run: {exc}", file=sys.stderr)
                return 2
    return main(url or data_url, burst=args.burst, name=args.name, data_url=data_url)


if __name__ == "__main__":
    raise SystemExit(cli())
