"""The detection engine of one partition: reads its accepted ticks, scores them, evaluates
rules, publishes.

Ticks are partitioned by commodity (base/keys.py); a partition is owned by one engine process
at a time (server/leases.py), which runs one ``Engine`` per partition it owns
(server/engine_process.py). The owner is the single consumer of the partition's stream (group
``engine``): ticks of one series must be seen in order. Each read (a batch) ends in ONE Redis
transaction, fenced by the partition's lease, that holds everything the batch changed: the
alerts it raised, latest prices and history, the pub/sub messages and, when the state is saved
(below), the detector and rule state of the series it touched and the XACK of the ticks. A
crash before that transaction leaves the ticks pending and the saved state as it was, so the
restarted engine processes them again with the same result; a crash after it has nothing left
to do but what the next paragraph says. That is how no accepted tick is lost and no alert is
raised twice.

An engine that is behind (its reads come back full) saves the state with every
``SAVE_EVERY``-th read's transaction (and whenever anything else commits, or it is caught up),
not with every read's: with many series nearly every tick touches its own series, whose state
document costs the engine far more than the tick's own outputs. A read's transaction in
between commits its outputs (prices, history, alerts, the pub/sub messages) and the end of the
read in the engine's own state document, but neither its state nor the XACK of its ticks: they
stay pending. After a crash the next owner loads the saved state and judges those pending
reads again, read by read as they were judged, without committing their outputs a second time
(``_replay``); it comes to the state the crashed engine had, and goes on from there. Ticks are
acknowledged only with the state that learned them.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from detectors.ceiling import ceilings_of
from base.failures import describe_error
from detectors.stack import DetectorStack
from base.contracts import Tick, Verdict
from pipeline.step import Step
from base.catalog import Catalog
from rules.engine import RuleEngine
from stores import histograms
from base import keys
from server.checkpoint import encode_state, register
from base.config import Settings
from server.reliability import SourceReliability
from stores.silences import active_silences
from rules.rulebook import Rulebook
from server.batch import Batch, batched, entry_order, parse_tick, publish
from server.engine_state import load_checkpoint, write_state
from server.error_log import ErrorLog
from server.leases import LeaseLost, Leases

log = logging.getLogger("pasarwatch.engine")

# Reads whose state is saved together (see the module's doc). A takeover judges again at most
# this many reads (up to 8 x PASARWATCH_ENGINE_BATCH ticks, about half a second of CPU at 500).
SAVE_EVERY = 8

# A batch's history entries, one XADD each, run by Redis in one command: sent from redis-py as
# one XADD per tick, the client's packing and reply parsing of those commands cost the engine
# about four times its CPU for one script (9.6 against 2.3 us per tick, `bench engine_cpu`).
# KEYS are the series' history streams (all in the partition's slot); ARGV[1] is the kept
# length, then each entry's id and message.
HISTORY_XADD = """
for i = 1, #KEYS do
    redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[1], ARGV[2 * i], 'm', ARGV[2 * i + 1])
end
"""


@register
@dataclass
class Clock:
    """The engine's event time: the newest tick time, advanced by wall time since. It stamps
    what no tick dates (a rule set swapped in, a lifted mute); the stale sweep does not use it
    (see ``Engine.series_now``): one tick with an odd time would move it for every series."""

    event_ts: float = 0.0
    seen_at: float = 0.0

    def observe(self, ts: float, wall: float) -> None:
        if ts > self.event_ts:
            self.event_ts, self.seen_at = ts, wall

    def now(self, wall: float) -> float:
        return self.event_ts + (wall - self.seen_at) if self.event_ts else wall


class Engine:
    """One partition's engine: its detectors, rules and checkpoint, committed under its lease."""

    def __init__(self, settings: Settings, client: redis.Redis, catalog: Catalog, rulebook: Rulebook,
                 partition: keys.Partition, leases: Leases):
        self.settings = settings
        # redis-py types replies for either decode_responses setting; this client's are bytes.
        self.redis: Any = client
        self.catalog = catalog
        self.rulebook = rulebook
        self.k = partition
        self.leases = leases
        self.partition_count = len(leases.partitions)  # every partition of the data, held or not
        self._fresh_state()
        self._stopping = False
        self.restored = False  # set once the checkpoint is loaded: Redis was reachable
        self.last_committed: str | None = None
        self.errors = ErrorLog()
        self._progress_at = 0.0

    def _fresh_state(self) -> None:
        """Everything the checkpoint holds, as on a first start."""
        stack = DetectorStack(ceilings=ceilings_of(self.catalog))
        self.step = Step(stack, RuleEngine(self.rulebook.current), self.settings.allowed_lateness)
        self.stack, self.rules = stack, self.step.rules
        self.clock = Clock()
        self.last_alert = (0, 0)
        self.arrived: dict[tuple[str, str], float] = {}  # wall time each series' newest tick came
        self.sources = SourceReliability()
        # Reads whose outputs are committed but whose state is not saved yet (their ticks are
        # pending), and what they changed: the state the next save writes.
        self.unsaved: list[list[tuple[bytes, dict]]] = []
        self.unsaved_changes = Batch()
        # Ends (entry ids) of reads whose outputs were committed after the saved state, whose
        # ticks are to be judged again without committing those outputs twice (``_replay``).
        self.replay: list[str] = []

    def series_now(self, series: tuple[str, str], wall: float) -> float:
        """A series' own event time: its newest tick's time, advanced by wall time since that
        tick arrived. A live feed follows the wall clock; a replay of 2024 prices follows its own
        dates; and a tick with an odd time (one without ``ts``, so "now", among a replay) moves
        only its own series, never the staleness of the others."""
        arrived, latest = self.arrived.get(series), self.step.latest_ts.get(series)
        if arrived is None or latest is None:
            return self.clock.now(wall)
        return latest + (wall - arrived)

    # -- start-up ---------------------------------------------------------------------------
    def restore(self) -> None:
        """Create the consumer group if needed and load the partition's last checkpoint."""
        create_group(self.redis, self.k)
        load_checkpoint(self)
        self.restored = True
        log.info("partition %d: restored %d series, %d alert states", self.k.number, len(self.step.provinces),
                 len(self.rules.states))

    def reload(self) -> None:
        """Forget what was learned since the last commit: back to the checkpoint in Redis."""
        self._fresh_state()
        load_checkpoint(self)

    def read(self, pending: bool, block: int | None = None) -> list[tuple[bytes, dict]]:
        """Entries this partition's previous owner read but never acknowledged (``pending``:
        after the ones this engine judged since its last save), or new ones."""
        after = self.unsaved[-1][-1][0] if self.unsaved else "0"
        response = self.redis.xreadgroup(
            keys.ENGINE_GROUP, keys.ENGINE_CONSUMER, {self.k.ticks: after if pending else ">"},
            count=self.settings.engine_batch, block=block,
        )
        return response[0][1] if response else []

    # -- one batch --------------------------------------------------------------------------
    def process_entries(self, entries: list[tuple[bytes, dict]]) -> Batch | None:
        """Process and commit one read. A read that fails for any reason but Redis is processed
        again one tick at a time from the checkpoint, so that only the ticks that fail on their
        own go to the dead-letter stream and the rest flow (see ``_isolate``)."""
        unsaved = [entry for read in self.unsaved for entry in read]  # judged since the last save
        try:
            return self._process(entries)
        except (redis.RedisError, LeaseLost):
            raise  # an outage: run_engine starts over from the checkpoint when Redis is back
        except Exception as exc:  # noqa: BLE001 - no input may stop the engine
            self.errors.note("batch", exc)
            self._isolate(unsaved, entries)
            return None

    def save(self) -> None:
        """Save the state of the reads judged since the last save, and acknowledge their ticks."""
        if self.unsaved:
            self.commit(Batch())

    def _isolate(self, unsaved: list[tuple[bytes, dict]], entries: list[tuple[bytes, dict]]) -> None:
        """Back to the checkpoint (the failed batch may have half-taught the detectors), then
        each tick alone: one that still fails is dead-lettered, and the state it half-taught is
        thrown away again. The ticks around it are judged one by one instead of as a batch.
        The reads judged since the last save whose outputs are committed are judged again first,
        as after a takeover, and saved."""
        self.reload()
        rest = self._replay(unsaved + entries)
        self.save()
        for entry in rest:
            try:
                self._process([entry], save=True)
            except (redis.RedisError, LeaseLost):
                raise
            except Exception as exc:  # noqa: BLE001
                self.reload()
                self.dead_letter(entry, exc)

    def _replay(self, entries: list[tuple[bytes, dict]]) -> list[tuple[bytes, dict]]:
        """Judge again the reads whose outputs were committed after the saved state (``replay``
        holds their ends), read by read as they were judged, committing nothing: their state
        comes out as it was and is saved with a later read. Returns the entries after them."""
        while entries and self.replay:
            end = entry_order(self.replay[0])
            cut = 0
            while cut < len(entries) and entry_order(entries[cut][0]) <= end:
                cut += 1
            read, entries = entries[:cut], entries[cut:]
            if entries or (read and entry_order(read[-1][0]) == end):
                self.replay.pop(0)  # that read is whole (or its end is not pending any more)
            if read:
                self.unsaved_changes = self.unsaved_changes.merged(self._judge(read, count_errors=False))
                self.unsaved.append(read)
        return entries

    def dead_letter(self, entry: tuple[bytes, dict], exc: BaseException) -> None:
        """Move one tick to ``pw:deadletter`` (kept, listed and replayable by an operator) and
        acknowledge it, in one transaction."""
        entry_id, fields = entry
        tick_id = entry_id.decode()
        error = describe_error(exc)
        log.error("tick %s cannot be processed (%s); moved to %s", tick_id, error, self.k.deadletter)
        pipe = self._fenced()
        pipe.xadd(self.k.deadletter, {"t": (fields or {}).get(b"t", b""), "id": tick_id, "error": error,
                                      "at": repr(time.time())},
                  maxlen=self.settings.deadletter_len, approximate=False)  # rare: exact is cheap
        pipe.xack(self.k.ticks, keys.ENGINE_GROUP, tick_id)
        pipe.incr(self.k.deadlettered)
        pipe.hincrby(self.k.errors, "engine:deadletter", 1)
        self._execute(pipe)
        self.last_committed = tick_id

    def _process(self, entries: list[tuple[bytes, dict]], save: bool = False) -> Batch | None:
        if self.replay:
            entries = self._replay(entries)
            if not entries:
                return None
        batch = self._judge(entries)
        # A read that did not come back full found the engine caught up: saved now, so that what
        # reads the checkpoint (the forecast API, a restart) is as fresh as the outputs.
        caught_up = len(entries) < self.settings.engine_batch
        self.commit(batch, save=save or caught_up or len(self.unsaved) + 1 >= SAVE_EVERY, read=entries)
        return batch

    def _judge(self, entries: list[tuple[bytes, dict]], count_errors: bool = True) -> Batch:
        """One read judged: what it changed and what it outputs, not committed."""
        batch = Batch()
        wall = time.time()
        ticks: list[Tick] = []
        for entry_id, fields in entries:
            tick_id = entry_id.decode()
            batch.tick_ids.append(tick_id)
            payload = (fields or {}).get(b"t")
            if payload is None:  # trimmed, or written by hand without a tick: ack and skip
                log.warning("stream entry %s has no tick field", tick_id)
                continue
            tick = parse_tick(payload)
            tick["id"] = tick_id
            ticks.append(tick)
        # One step (pipeline/step.py), as the backtest takes it: late ticks are history, the
        # others judged together by the detectors, then by the rules. A replay after a crash
        # re-reads the same batch and comes to the same result.
        judged = self.step.ticks(ticks, active_silences(self.redis, wall) if ticks else None, wall)
        for tick, verdict, newest in zip(ticks, judged.verdicts, judged.newest):
            self.record(tick, verdict, newest, batch, wall)
        for cause, error in judged.errors if count_errors else ():  # a replay's were counted once
            self.errors.contained(cause, error, f"the batch ending {batch.tick_ids[-1]}")
        batch.alerts.extend(judged.alerts)
        return batch

    def record(self, tick: Tick, verdict: Verdict, newest: bool, batch: Batch, wall: float) -> None:
        series = (tick["commodity"], tick["market"])
        self.clock.observe(tick["ts"], wall)
        if newest:  # a late tick joins the history but does not replace the latest price
            self.arrived[series] = wall
            batch.newest.add(tick["id"])
        batch.series.add(series)
        batch.panels.add(tick["commodity"])
        batch.prices.append({
            "type": "price", "id": tick["id"], "commodity": tick["commodity"], "market": tick["market"],
            "province": tick["province"], "price": tick["price"], "ts": tick["ts"], "unit": tick["unit"],
            "source": tick.get("source"), "verdict": verdict,
        })
        reporter = tick.get("device") or tick.get("source")
        if reporter and not verdict.get("late"):
            change = self.sources.learn_one(reporter, bool(verdict.get("quarantined")))
            batch.reporters.add(reporter)
            if change:
                log.warning("source %s is now %s (%.0f%% of recent ticks quarantined)",
                            reporter, change["state"], 100 * change["quarantine_rate"])
                batch.sources.append({"type": "source", **change, "ts": tick["ts"]})

    def sweep(self, wall: float) -> None:
        """Stale-feed check over every series, at event time (see Clock)."""
        batch = Batch()
        swept = self.step.sweep(lambda series: self.series_now(series, wall), active_silences(self.redis, wall),
                                wall, event_now=self.clock.now(wall))  # event_now: mutes lifted since
        batch.health, batch.alerts = swept.health, swept.alerts
        batch.series.update((health["commodity"], health["market"]) for health in swept.health)
        for cause, error in swept.errors:
            self.errors.contained(cause, error, "the stale sweep")
        if batch:
            self.commit(batch)

    def swap_rules(self, wall: float) -> None:
        """Take the rule set the process's rulebook just loaded (see engine_process)."""
        batch = Batch(alerts=self.rules.swap(self.rulebook.current, self.clock.now(wall)))
        if batch:
            self.commit(batch)

    # -- the transaction ----------------------------------------------------------------------
    def _fenced(self) -> Any:
        """A transaction that goes through only while this engine holds the partition's lease."""
        pipe = self.redis.pipeline(transaction=True)
        self.leases.fence(pipe, self.k)
        return pipe

    def _execute(self, pipe: Any) -> list:
        try:
            return pipe.execute()
        except redis.WatchError:
            raise LeaseLost(f"partition {self.k.number}: the lease moved during the commit") from None

    def commit(self, batch: Batch, save: bool = True, read: list[tuple[bytes, dict]] | None = None) -> None:
        """One transaction: the batch's outputs and, with ``save``, the state of everything
        judged since the last save with the XACK of its ticks; without, the end of ``read``
        (the batch's entries) joins the reads to judge again after a crash."""
        pipe = self._fenced()
        published: list[bytes] = []  # encoded once: stored, kept in history and published as is
        changes = self.unsaved_changes.merged(batch)
        if save:
            write_state(self, pipe, changes)
            reads = list(self.replay)
        else:
            reads = [entries[-1][0].decode() for entries in (*self.unsaved, read or []) if entries] + self.replay
        latest: dict[str, bytes] = {}
        history_keys: list[str] = []
        history_args: list[Any] = [self.settings.history_len]
        for message in batch.prices:
            encoded = orjson.dumps(message)
            if message["id"] in batch.newest:
                latest[keys.series_key(message["commodity"], message["market"])] = encoded
            history_keys.append(self.k.history(message["commodity"], message["market"]))
            history_args += (message["id"], encoded)
            published.append(encoded)
        if history_keys:  # every history entry of the batch in one command (see HISTORY_XADD)
            # (EVAL by name: a cluster pipeline has no eval(), and routes EVAL by its keys' slot)
            pipe.execute_command("EVAL", HISTORY_XADD, len(history_keys), *history_keys, *history_args)
        if latest:  # one command for the batch's newest prices, not one per tick
            pipe.hset(self.k.latest, mapping=latest)
            latest_ts = {}
            for key in latest:
                commodity, market = key.split("/", 1)
                latest_ts[key] = self.step.latest_ts[(commodity, market)]
            pipe.hset(self.k.latest_ts, mapping=latest_ts)
        for message in batch.health:
            encoded = orjson.dumps(message)
            pipe.hset(self.k.health, keys.series_key(message["commodity"], message["market"]), encoded)
            published.append(encoded)
        for message in batch.sources:
            encoded = orjson.dumps(message)
            pipe.hset(self.k.sources, message["source"], encoded)
            published.append(encoded)
        for event in batch.alerts:
            event["id"] = self._next_alert_id()
            encoded = orjson.dumps(event)
            pipe.xadd(self.k.alerts, {"a": encoded}, id=event["id"])
            if event["state"] == "firing":
                pipe.hset(self.k.firing, event["key"], encoded)
            else:
                pipe.hdel(self.k.firing, event["key"])
            published.append(encoded)
        pipe.set(self.k.state_engine, encode_state({"clock": self.clock, "last_alert": self.last_alert,
                                                    "reads": reads}))
        if batch.tick_ids:
            pipe.incrby(self.k.processed, len(batch.tick_ids))
        if batch.alerts:
            pipe.incrby(self.k.alerts_raised, len(batch.alerts))
        for cause, count in self.errors.take_counts().items():
            pipe.hincrby(self.k.errors, cause, count)
        wall = time.time()
        if batch.tick_ids:
            pipe.set(self.k.progress, repr(wall))
        if self.settings.redis_cluster:  # redis-py allows no PUBLISH in a cluster transaction: right after it
            self._execute(pipe)
            publish(self.redis, published)
        else:
            if published:
                pipe.publish(keys.EVENTS, batched(published))
            self._execute(pipe)
        if batch.tick_ids:  # not in the transaction: the histograms are no partition's (another slot)
            timing = self.redis.pipeline(transaction=False)
            histograms.engine_commit(timing, batch.tick_ids, batch.started)
            timing.execute()
        if save:
            self.unsaved, self.unsaved_changes = [], Batch()
        elif read:
            self.unsaved.append(read)
            self.unsaved_changes = changes
        if batch.tick_ids:
            self.last_committed = batch.tick_ids[-1]
            self._progress_at = wall

    def report_progress(self, wall: float) -> None:
        """Caught up: nothing waits for this partition's engine (at most once a second); what
        was judged since the last save is saved now."""
        self.save()
        if wall - self._progress_at >= 1.0:
            self.redis.set(self.k.progress, repr(wall))
            self._progress_at = wall

    def _next_alert_id(self) -> str:
        # Explicit ids let the alert message carry its own id in the same transaction. The
        # sequence part counts in steps of P from the partition's number, so ids of different
        # partitions never meet (the dispatcher and the API take an id as the alert's own).
        ms, seq = self.last_alert
        now_ms = int(time.time() * 1000)
        self.last_alert = (now_ms, 0) if now_ms > ms else (ms, seq + 1)
        return f"{self.last_alert[0]}-{self.last_alert[1] * self.partition_count + self.k.number}"

    def trim(self) -> None:
        """Drop processed ticks older than the retention period (never unprocessed ones).

        The audit chain's anchor moves to the newest trimmed tick, so the chain stays verifiable.
        """
        if not self.last_committed:
            return
        last_ms = int(self.last_committed.split("-", 1)[0])
        cutoff = last_ms - int(self.settings.ticks_retention_days * 86_400_000)
        if cutoff <= 0:
            return
        newest_old = self.redis.xrevrange(self.k.ticks, max=f"({cutoff}-0", count=1)
        if not newest_old:
            return
        entry_id, fields = newest_old[0]
        pipe = self._fenced()
        pipe.set(self.k.audit_anchor, entry_id + b" " + fields.get(b"h", b""))
        pipe.xtrim(self.k.ticks, minid=entry_id.decode(), approximate=False)
        pipe.xdel(self.k.ticks, entry_id)
        self._execute(pipe)


def create_group(client: Any, partition: keys.Partition) -> None:
    """The partition's consumer group ``engine`` (and its stream), unless it exists."""
    try:
        client.xgroup_create(partition.ticks, keys.ENGINE_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
