"""One engine process: the partitions it holds, each with its own ``Engine``, in one loop.

Every turn: renew and balance the leases (server/leases.py) about once a second, starting an
``Engine`` from its checkpoint for each partition gained (first reading what the previous owner
read but never committed) and dropping the ones lost; read new ticks of every partition held
in one blocking XREADGROUP and judge them partition by partition; then, on their timers, check
the rule files (once for the process, swapped into every partition), sweep for stale feeds,
trim, and hand new alerts to the notification dispatcher.

Any number of these processes share the partitions (``pasarwatch up --engines N``, or the
Procfile's ``engine`` line scaled): each owns about P/N, and the partitions of one that dies
are taken over by the others within ``PASARWATCH_ENGINE_LEASE`` seconds and a second.
"""
from __future__ import annotations

import logging
import signal
import time
from typing import Any

import orjson
import redis

from base import keys
from base.catalog import Catalog
from base.config import Settings
from base.redis_url import data_client, disconnect, notify_client
from detectors.stack import DETECTOR_NAMES
from rules.rulebook import Rulebook
from server.batch import publish
from server.engine import Engine
from server.leases import LeaseLost, Leases, engine_id
from stores.partitions import partition_count
from workers.dispatch import dispatch_alerts

log = logging.getLogger("pasarwatch.engine")

BALANCE_EVERY = 1.0  # seconds between lease renewals; the lease lasts several of these
IDLE_WAIT = 0.25  # seconds to wait when this process holds no partition (others hold them all)


class EngineProcess:
    def __init__(self, settings: Settings, client: redis.Redis, catalog: Catalog, me: str | None = None,
                 notify: redis.Redis | None = None):
        self.settings = settings
        self.redis: Any = client
        self.notify = notify  # the notifications' Redis (RQ): ``client`` itself, another, or none
        self._notify_down = False
        self._notify_retry_at = 0.0  # monotonic: while it is away, tried again only then
        self.catalog = catalog
        self.me = me or engine_id()
        self.rulebook = Rulebook(settings.rules_dir, catalog, set(DETECTOR_NAMES))
        self.engines: dict[int, Engine] = {}
        self.pending: set[int] = set()  # partitions whose previous owner's unfinished reads come first
        self.leases: Leases | None = None
        self.partition_count = 0
        self.restored = False
        self._stopping = False
        self._renewed = 0.0
        self._turns = 0

    def start(self) -> None:
        self.partition_count = partition_count(self.redis, self.settings.partitions)
        self.leases = Leases(self.redis, self.me, keys.partitions(self.partition_count), self.settings.engine_lease)
        self.publish_rules_status()
        self.restored = True
        if self.notify is None:
            log.warning("on a Redis Cluster without RQ_REDIS_URL alerts are raised, stored and published, but no "
                        "Telegram notifications are sent: RQ, which delivers them, needs a standalone Redis")
        if self.redis.exists(keys.LEGACY_TICKS):
            log.error("%s holds ticks of a version before partitions: they are not read. Replay them with "
                      "`pasarwatch import` from your exports, then delete the key (docs/architecture.md)",
                      keys.LEGACY_TICKS)
        log.info("engine %s: %d partitions, lease %.0f s", self.me, self.partition_count, self.settings.engine_lease)

    def run(self) -> None:
        self.start()
        next_balance = next_sweep = next_rules_check = 0.0
        try:
            while not self._stopping:
                wall = time.time()
                if wall >= next_balance:
                    self.balance(wall)
                    next_balance = wall + BALANCE_EVERY
                self.turn()
                self.keep_leases()
                wall = time.time()
                if wall >= next_rules_check:
                    self.check_rules(wall)
                    next_rules_check = wall + self.settings.rules_poll
                if wall >= next_sweep:
                    self.sweep(wall)
                    next_sweep = wall + self.settings.stale_sweep
                if self.notify is not None:
                    self.dispatch()
        finally:
            if self._stopping and self.leases is not None:
                self.leases.leave()  # hand the partitions back now rather than when the leases expire

    def stop(self) -> None:
        self._stopping = True

    def dispatch(self) -> None:
        """Hand new alerts to the notification workers."""
        held = self.leases.partitions if self.leases else None
        if self.notify is self.redis:
            dispatch_alerts(self.redis, self.catalog, partitions=held)
            return
        if self._notify_down and time.monotonic() < self._notify_retry_at:
            return  # each try may cost a timeout: not every loop
        try:
            dispatch_alerts(self.redis, self.catalog, partitions=held, notify=self.notify)
        except redis.RedisError as exc:
            # The notifications' Redis is away: scoring goes on, and the alerts wait, unacknowledged,
            # in their partitions' streams until it is back. (A fault of the data Redis shows
            # again in the next turn, which starts the engine over.)
            if not self._notify_down:
                log.warning("notifications' Redis unavailable (%s): alerts wait in their streams", exc)
            self._notify_down = True
            self._notify_retry_at = time.monotonic() + NOTIFY_RETRY
            return
        if self._notify_down:
            log.info("notifications' Redis is back: waiting alerts handed on")
        self._notify_down = False

    def balance(self, wall: float) -> None:
        assert self.leases is not None
        gained, lost = self.leases.balance(wall)
        self._renewed = wall
        for partition in lost:
            self.drop(partition.number)
        for partition in gained:
            engine = Engine(self.settings, self.redis, self.catalog, self.rulebook, partition, self.leases)
            engine.restore()
            self.engines[partition.number] = engine
            self.pending.add(partition.number)
            log.info("engine %s took partition %d", self.me, partition.number)
            self.keep_leases()  # restoring a large partition takes a while: keep the others

    def keep_leases(self) -> None:
        """Renew the leases if a renewal is due: called between pieces of long work, so that no
        lease lapses while this engine is busy with another partition."""
        wall = time.time()
        if self.leases is not None and wall - self._renewed >= BALANCE_EVERY:
            self._renewed = wall
            for partition in self.leases.renew(wall):
                self.drop(partition.number)

    def drop(self, number: int) -> None:
        """Forget a partition's in-memory state: whoever owns it now starts from its checkpoint."""
        self.engines.pop(number, None)
        self.pending.discard(number)

    def turn(self) -> None:
        """Read and judge one round of ticks of every partition held."""
        if not self.engines:
            time.sleep(IDLE_WAIT)  # not synchronisation: nothing to read until a lease comes free
            return
        for number in sorted(self.pending):
            engine = self.engines.get(number)
            entries = engine.read(pending=True) if engine else []
            if engine and entries:
                self._judge(engine, entries)
                self.keep_leases()
            else:
                self.pending.discard(number)
        if self.pending:
            return
        by_stream = self._read_new()
        wall = time.time()
        for engine in list(self.engines.values()):
            fresh = by_stream.get(engine.k.ticks)
            if fresh:
                self._judge(engine, fresh)
                self.keep_leases()
            else:
                engine.report_progress(wall)

    def _read_new(self) -> dict[str, list]:
        """New entries of every partition held, by stream name; waits up to half a second."""
        block = int(BALANCE_EVERY * 500)
        if not self.settings.redis_cluster:  # one blocking read over every stream held
            streams = {engine.k.ticks: ">" for engine in self.engines.values()}
            response = self.redis.xreadgroup(keys.ENGINE_GROUP, keys.ENGINE_CONSUMER, streams,
                                             count=self.settings.engine_batch, block=block)
            return {stream.decode(): entries for stream, entries in response or []}
        # A cluster refuses a read across slots: each partition on its own, without waiting,
        # then a short wait on one of them (in turn) when none had anything.
        found = {}
        for engine in self.engines.values():
            entries = engine.read(pending=False)
            if entries:
                found[engine.k.ticks] = entries
        if not found:
            held = sorted(self.engines)
            self._turns += 1
            engine = self.engines[held[self._turns % len(held)]]
            entries = engine.read(pending=False, block=max(1, block // len(held)))
            if entries:
                found[engine.k.ticks] = entries
        return found

    def _judge(self, engine: Engine, entries: list) -> None:
        try:
            engine.process_entries(entries)
        except LeaseLost as exc:
            log.warning("%s; dropping it", exc)
            self.drop(engine.k.number)

    def check_rules(self, wall: float) -> None:
        change = self.rulebook.reload_if_changed()
        if change is None:
            return
        if change.ok:
            for engine in list(self.engines.values()):
                self._guarded(engine, engine.swap_rules, wall)
        self.publish_rules_status()

    def sweep(self, wall: float) -> None:
        for engine in list(self.engines.values()):
            self._guarded(engine, engine.sweep, wall)
            self._guarded(engine, lambda _: engine.trim(), wall)
            self.keep_leases()
        self.redis.set(keys.ENGINE_HEARTBEAT, wall, ex=max(30, int(self.settings.stale_sweep * 3)))

    def _guarded(self, engine: Engine, action: Any, wall: float) -> None:
        try:
            action(wall)
        except LeaseLost as exc:
            log.warning("%s; dropping it", exc)
            self.drop(engine.k.number)

    def publish_rules_status(self) -> None:
        status = self.rulebook.status()
        self.redis.set(keys.RULES_STATUS, orjson.dumps(status))
        publish(self.redis, [orjson.dumps({"type": "rules", **status})])


# Seconds between attempts to reach Redis again: quick at first, never more than MAX apart.
FIRST_RETRY, MAX_RETRY = 0.1, 2.0
# Above the blocking read; a Redis that stops answering (not closing) is an outage too.
SOCKET_TIMEOUT = 15.0
# The notifications' Redis is not worth a lease: a command to it that hangs must end well
# within the engine's lease (PASARWATCH_ENGINE_LEASE, at least 1 s), and while it is away
# the dispatcher tries it again only this often (seconds).
NOTIFY_TIMEOUT_SHARE, NOTIFY_RETRY = 0.25, 5.0


def run_engine(settings: Settings, catalog: Catalog) -> None:
    """Run an engine process until SIGTERM, outliving Redis outages.

    When Redis goes away the process waits for it (bounded back-off) and starts over from the
    checkpoints, as a restarted process would: the partitions it held are taken again (its
    leases, if they have not expired, are still its own, under the same id) and their ticks
    read but not committed are read again (they are still pending in each consumer group).
    Starting over is what keeps every tick processed exactly once: the transaction of the batch
    in hand may or may not have reached Redis before the connection broke, and the in-memory
    state that already learned that batch is right in one case only, so it is thrown away and
    Redis decides.
    """
    options = {"socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": 2}
    if not settings.redis_cluster:
        options["health_check_interval"] = 10
    client = data_client(settings.redis_url, settings.redis_cluster, **options)
    notify_timeout = settings.engine_lease * NOTIFY_TIMEOUT_SHARE
    notify = notify_client(settings.notify_url, settings.redis_url, client, socket_timeout=notify_timeout,
                           socket_connect_timeout=min(2.0, notify_timeout), health_check_interval=10)
    me = engine_id()
    current: list[EngineProcess] = []
    stopping = False

    def stop(*_) -> None:
        nonlocal stopping
        stopping = True
        for process in current:
            process.stop()

    signal.signal(signal.SIGTERM, stop)
    delay = FIRST_RETRY
    while not stopping:
        process = EngineProcess(settings, client, catalog, me, notify)
        current[:] = [process]
        try:
            process.run()
            return
        except (redis.ConnectionError, redis.TimeoutError) as exc:  # also "LOADING" (BusyLoadingError)
            if process.restored:  # it was running: a new outage, so the back-off starts again
                delay = FIRST_RETRY
                log.warning("lost Redis (%s); starting over from the checkpoints when it is back", exc)
            time.sleep(delay)  # back-off between attempts, not synchronisation
            delay = min(delay * 2, MAX_RETRY)
        except Exception:  # noqa: BLE001 - a fault outside any one tick: start over, do not exit
            log.exception("engine failed; starting over from the checkpoints in %.1f s", MAX_RETRY)
            time.sleep(MAX_RETRY)  # back-off: a fault that repeats must not spin
        finally:
            for each in {id(c): c for c in (client, notify) if c is not None}.values():
                disconnect(each)  # a half-read reply must not reach the next run
