"""One import: files read, every price validated like an HTTP tick, appended in time order.

Reading (in a thread, off the event loop): rows become raw items (server/import_formats.py),
``validate_ticks`` judges them in batches, and the good ones are sorted by time in runs of
``RUN`` ticks; a run that fills is written to a temporary file, so a 100 MB file never sits in
memory. Appending: the runs are merged in time order (then commodity and market) and appended
``BATCH`` at a time through the process' one ``TickAppender``, the path every live tick takes:
the engine then scores them in order, so an empty series learns its history ("warm on day
one") and history older than a live series is stored as late (server/engine.py).

Identity, so that importing a file twice adds nothing: each imported tick is sent by device
``import`` with source ``import:<commodity>@<market>`` and ``seq`` = its time in milliseconds,
and the appender drops a (device, source, seq) it has seen (server/ingest.py). So one price per
series and instant; a second one, in the same file or a later import, counts as a duplicate
(a revised price for a day already imported is skipped too, not replaced). A row's own
``source`` and ``seq`` (NDJSON) are validated, then replaced by this identity.
An import cut short (process killed, Redis gone) is repeated safely the same way.

The engine must keep up: once ``BACKLOG`` of this import's ticks wait unread, appending pauses,
and if the engine reads none of them for ``ENGINE_WAIT`` seconds the import stops (what it
appended stays; run it again to finish).
"""
from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Iterator

import orjson
from redis.asyncio import Redis

from base.catalog import Catalog
from base import keys
from base.keys import Partition
from server.import_files import BadLine, Source
from server.import_formats import Options, Record, find_layout, json_record
from server.ingest import TickAppender
from server.ticks import validate_ticks

BATCH = 1_000
RUN = 50_000
BACKLOG = 20_000
ENGINE_WAIT = 120.0
SAMPLES = 5  # refusals shown per reason
MAX_REASONS = 40
SERIES_SHOWN = 50
DEVICE = "import"


class ImportStalled(RuntimeError):
    """The engine stopped reading this import's ticks: the import stops, what it appended stays."""


def source_of(commodity: str, market: str) -> str:
    """The per-series source of imported ticks (a valid source id: at most 64 characters)."""
    source = f"import:{commodity}@{market}"
    if len(source) <= 64:
        return source
    return "import:" + hashlib.blake2b(f"{commodity}/{market}".encode(), digest_size=12).hexdigest()


@dataclass
class Progress:
    """How far an import has got; written by the reading thread and the appending loop."""

    sources: list[Source]
    phase: str = "reading"
    rows: int = 0
    to_append: int = 0
    appended: int = 0
    waiting: bool = False
    started: float = field(default_factory=time.monotonic)
    phase_started: float = field(default_factory=time.monotonic)

    def enter(self, phase: str) -> None:
        self.phase = phase
        if phase != "done":  # done keeps the appending phase's clock: its rate is the import's
            self.phase_started = time.monotonic()

    def snapshot(self) -> dict:
        elapsed = max(time.monotonic() - self.phase_started, 1e-6)
        if self.phase == "reading":
            total = sum(s.size for s in self.sources) or 1
            fraction = min(sum(s.position() for s in self.sources) / total, 1.0)
            done, unit = self.rows, "rows"
        else:
            fraction = self.appended / self.to_append if self.to_append else 1.0
            done, unit = self.appended, "ticks"
        rate = done / elapsed
        left = elapsed * (1 - fraction) / fraction if 0 < fraction < 1 else (0.0 if fraction >= 1 else None)
        return {"phase": self.phase, "fraction": round(fraction, 4), "done": done, "unit": unit,
                "rate": round(rate, 1), "seconds_left": None if left is None else round(left, 1),
                "waiting_for_engine": self.waiting, "rows": self.rows, "appended": self.appended,
                "to_append": self.to_append}

    def line(self) -> str:
        """One line of progress bar: phase, bar, percent, count, rate and time left."""
        shot = self.snapshot()
        filled = int(shot["fraction"] * 24)
        left = shot["seconds_left"]
        eta = "" if left is None else f", {left:,.0f}s left"
        wait = " (waiting for the engine)" if shot["waiting_for_engine"] else ""
        return (f"{shot['phase']:<9} [{'#' * filled}{'.' * (24 - filled)}] {100 * shot['fraction']:5.1f}% "
                f"{shot['done']:,} {shot['unit']}, {shot['rate']:,.0f} {shot['unit']}/s{eta}{wait}")


@dataclass
class Report:
    """What the import did; small whatever the files (samples are capped)."""

    files: list[dict] = field(default_factory=list)
    rows: int = 0
    values: int = 0
    empty: int = 0
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    by_reason: dict[str, dict] = field(default_factory=dict)
    duplicates_first: list[str] = field(default_factory=list)
    series: set[str] = field(default_factory=set)
    series_count: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    seconds: float = 0.0

    def refuse(self, where: str, column: str | None, error: dict) -> None:
        self.refused += 1
        reason = error["reason"] if error["reason"] in self.by_reason or len(self.by_reason) < MAX_REASONS else "other"
        entry = self.by_reason.setdefault(reason, {"count": 0, "first": []})
        entry["count"] += 1
        if len(entry["first"]) < SAMPLES:
            entry["first"].append({"where": where, "column": column, "field": error.get("field"),
                                   "detail": str(error.get("detail", ""))[:300]})

    def accept(self, tick: dict) -> None:
        self.accepted += 1
        name = keys.series_key(tick["commodity"], tick["market"])
        if name not in self.series and len(self.series) < 100_000:
            self.series.add(name)
        self.first_ts = tick["ts"] if self.first_ts is None else min(self.first_ts, tick["ts"])
        self.last_ts = tick["ts"] if self.last_ts is None else max(self.last_ts, tick["ts"])

    def as_json(self) -> dict:
        return {
            "files": self.files, "rows": self.rows, "values": self.values, "empty": self.empty,
            "accepted": self.accepted, "duplicates": self.duplicates, "refused": self.refused,
            "refused_by_reason": self.by_reason, "duplicates_first": self.duplicates_first,
            "series": len(self.series), "series_first": sorted(self.series)[:SERIES_SHOWN],
            "from": _iso(self.first_ts), "to": _iso(self.last_ts), "seconds": round(self.seconds, 2),
            "ticks_per_second": round(self.accepted / self.seconds, 1) if self.seconds else None,
        }


class Importer:
    """Reads, validates and appends the files of one import (see the module doc)."""

    def __init__(self, redis: Redis, appender: TickAppender, catalog: Catalog, options: Options = Options(),
                 max_future_skew: float = 300.0, max_age: float | None = None,
                 partitions: list[Partition] | None = None):
        self.redis = redis
        self.appender = appender
        self.partitions = partitions or []  # the appender's: where each tick goes
        self.catalog = catalog
        self.options = options
        self.max_future_skew = max_future_skew
        self.max_age = max_age
        self.report = Report()
        self.progress: Progress | None = None

    @property
    def _progress(self) -> Progress:
        assert self.progress is not None, "progress exists while run() runs"
        return self.progress

    async def run(self, sources: list[Source]) -> Report:
        started = time.monotonic()
        self.progress = Progress(sources)
        with tempfile.TemporaryDirectory(prefix="pasarwatch-import-") as spill:
            runs = await asyncio.to_thread(self.read, sources, Path(spill))
            self.progress.enter("appending")
            self.progress.to_append = len(runs)
            merged = heapq.merge(*runs.iterators())
            try:
                await self._append(merged)
            finally:
                runs.close()
        self.progress.enter("done")
        self.report.seconds = time.monotonic() - started
        return self.report

    # -- reading (a worker thread) -------------------------------------------------------------
    def read(self, sources: list[Source], spill: Path) -> Runs:
        """Every file read and validated into sorted runs (``spill`` holds the runs on disk)."""
        runs = Runs(spill)
        pending: list[tuple[str, Record]] = []
        for source in sources:
            rows_before = self.report.rows
            layout = "ndjson"
            if source.kind == "ndjson":
                records = self._json_records(source)
            else:
                rows = source.rows()
                found, _ = find_layout(rows, self.catalog, self.options)
                layout = found.name
                records = self._table_records(found, rows)
            for record in records:
                pending.append((f"{source.name}:{record.line}", record))
                if len(pending) >= BATCH:
                    self._validate(pending, runs)
                    pending = []
            self.report.files.append({"file": source.name, "layout": layout, "rows": self.report.rows - rows_before})
        self._validate(pending, runs)
        runs.finish()
        return runs

    def _table_records(self, layout, rows) -> Iterator[Record]:
        for line, cells in rows:
            self.report.rows += 1
            self._progress.rows += 1
            if isinstance(cells, BadLine):
                yield Record(line, error={"field": "line", "reason": cells.reason, "detail": cells.detail})
            else:
                yield from layout.records(line, cells)

    def _json_records(self, source: Source) -> Iterator[Record]:
        for line, value in source.json_lines():
            self.report.rows += 1
            self._progress.rows += 1
            if isinstance(value, BadLine):
                yield Record(line, error={"field": "line", "reason": value.reason, "detail": value.detail})
            else:
                yield json_record(line, value)

    def _validate(self, pending: list[tuple[str, Record]], runs: Runs) -> None:
        items, places = [], []
        for where, record in pending:
            if record.error is not None:
                self.report.values += 1
                self.report.refuse(where, record.column, record.error)
            elif record.item is None:
                self.report.empty += 1
            else:
                self.report.values += 1
                items.append(record.item)
                places.append((where, record.column, record.rank))
        extra = {} if self.max_age is None else {"max_age": self.max_age}
        validated = validate_ticks(items, self.catalog, time.time(), self.max_future_skew, **extra)
        refused: set[int] = set()
        for error in validated.errors:
            if error["index"] not in refused:  # a row is refused once, for its first problem
                refused.add(error["index"])
                where, column, _ = places[error["index"]]
                self.report.refuse(where, column, error)
        for index, tick in validated.ticks:
            where, _, rank = places[index]
            runs.add(tick, where, rank)

    # -- appending (the event loop; each batch taken from the runs in a thread) ----------------
    async def _append(self, merged: Iterator[tuple]) -> None:
        engine = EngineWatch(self.redis, self.partitions)
        while batch := await asyncio.to_thread(_take, merged, BATCH):
            ticks = []
            for ts, commodity, market, *_, payload in batch:
                tick = orjson.loads(payload)
                tick.update(device=DEVICE, source=source_of(commodity, market), seq=round(ts * 1000), backfill=True)
                ticks.append(tick)
            ids = await self.appender.append(ticks)
            for (*_, where, _), tick, entry in zip(batch, ticks, ids):
                if entry is None:
                    self.report.duplicates += 1
                    if len(self.report.duplicates_first) < SAMPLES:
                        self.report.duplicates_first.append(where)
                else:
                    self.report.accept(tick)
            self._progress.appended += len(batch)
            engine.appended([(tick["commodity"], entry) for tick, entry in zip(ticks, ids) if entry])
            await engine.keep_up(self._progress)


class EngineWatch:
    """How many of this import's ticks the engines have not read yet (by each partition's engine
    group's last delivered id), so appending pauses instead of filling Redis faster than the
    engines read."""

    def __init__(self, redis: Redis, partitions: list[Partition]):
        self.redis = redis
        self.partitions = partitions
        # Per partition: (last id, the partition's ticks appended up to it), and how many it read.
        self.batches: dict[int, deque[tuple[tuple[int, int], int]]] = {}
        self.appended_to: dict[int, int] = {}
        self.read_of: dict[int, int] = {}
        self.total = 0

    @property
    def read(self) -> int:
        return sum(self.read_of.values())

    def appended(self, entries: list[tuple[str, str]]) -> None:
        """``entries``: (commodity, stream id) of each tick appended, in order."""
        last: dict[int, str] = {}
        for commodity, entry in entries:
            number = keys.partition_of(commodity, len(self.partitions))
            last[number] = entry
            self.appended_to[number] = self.appended_to.get(number, 0) + 1
        self.total += len(entries)
        for number, entry in last.items():
            self.batches.setdefault(number, deque()).append((_id(entry), self.appended_to[number]))

    async def keep_up(self, progress: Progress) -> None:
        delivered, since = None, time.monotonic()
        while True:
            seen = await self._delivered()
            for number, batches in self.batches.items():
                last = seen.get(number)
                while last is not None and batches and batches[0][0] <= last:
                    self.read_of[number] = batches.popleft()[1]
            if self.total - self.read <= BACKLOG:
                progress.waiting = False
                return
            progress.waiting = True
            if seen != delivered:
                delivered, since = seen, time.monotonic()
            elif time.monotonic() - since > ENGINE_WAIT:
                raise ImportStalled(f"the engine has read none of this import's ticks for {ENGINE_WAIT:.0f}s "
                                    f"(is `pasarwatch engine` running?); what was appended stays: run the "
                                    f"import again to finish it, the ticks already in are skipped")
            await asyncio.sleep(0.2)  # polling the engine's progress: nothing to wake us sooner

    async def _delivered(self) -> dict[int, tuple[int, int]]:
        """The engine group's last delivered id of each partition this import appended to
        (none for a partition without the stream or group: its engine has read nothing)."""
        numbers = sorted(self.batches)
        pipe = self.redis.pipeline(transaction=False)
        for number in numbers:
            pipe.xinfo_groups(self.partitions[number].ticks)
        seen = {}
        for number, groups in zip(numbers, await pipe.execute(raise_on_error=False) if numbers else []):
            for group in groups if isinstance(groups, list) else []:
                if group.get("name") in (keys.ENGINE_GROUP, keys.ENGINE_GROUP.encode()):
                    last = group.get("last-delivered-id")
                    seen[number] = _id(last.decode() if isinstance(last, bytes) else str(last))
        return seen


class Runs:
    """Validated ticks sorted in runs of RUN: the last in memory, the others in files."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.current: list[tuple] = []
        self.memory: list[list[tuple]] = []
        self.files: list[Path] = []
        self.spilled = 0
        self._handles: list = []
        self._count = itertools.count()

    def __len__(self) -> int:
        return sum(len(run) for run in self.memory) + self.spilled

    def add(self, tick: dict, where: str, rank: int = 0) -> None:
        """``rank`` 1 sorts a tick after the rank-0 ticks of its series and instant, so those win
        the duplicate check (a PIHPS group row's average yields to its item's own price)."""
        self.current.append((tick["ts"], tick["commodity"], tick["market"], rank, next(self._count), where,
                             orjson.dumps(tick)))
        if len(self.current) >= RUN:
            self._spill()

    def finish(self) -> None:
        self.current.sort()
        self.memory.append(self.current)
        self.current = []

    def _spill(self) -> None:
        self.current.sort()
        path = self.directory / f"run-{len(self.files)}.ndjson"
        with path.open("wb") as handle:
            for *head, payload in self.current:
                handle.write(orjson.dumps(head) + b"\t" + payload + b"\n")
        self.files.append(path)
        self.spilled += len(self.current)
        self.current = []

    def iterators(self) -> list[Iterator[tuple]]:
        return [iter(run) for run in self.memory] + [self._read(path) for path in self.files]

    def _read(self, path: Path) -> Iterator[tuple]:
        handle = path.open("rb")
        self._handles.append(handle)
        for line in handle:
            head, payload = line.rstrip(b"\n").split(b"\t", 1)
            yield (*orjson.loads(head), payload)

    def close(self) -> None:
        for handle in self._handles:
            handle.close()


def _take(iterator: Iterator, count: int) -> list:
    return list(itertools.islice(iterator, count))


def _id(entry: str) -> tuple[int, int]:
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq or 0)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")
