"""One read of a partition's tick stream, as the engine judges and commits it: what it changed
(``Batch``), how an entry's tick is read (``parse_tick``) and entries ordered (``entry_order``),
and how a batch's messages go out on ``pw:events`` as one (``publish``, ``batched``)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from base import keys
from base.contracts import AlertEvent, Tick


@dataclass
class Batch:
    """What one batch changed, written in one transaction."""

    tick_ids: list[str] = field(default_factory=list)
    prices: list[dict] = field(default_factory=list)
    newest: set[str] = field(default_factory=set)  # ids of prices that are their series' newest
    alerts: list[AlertEvent] = field(default_factory=list)
    health: list[dict] = field(default_factory=list)
    sources: list[dict] = field(default_factory=list)  # reliability changes of devices/sources
    reporters: set[str] = field(default_factory=set)  # devices/sources whose reliability learned
    series: set[tuple[str, str]] = field(default_factory=set)
    panels: set[str] = field(default_factory=set)
    started: float = field(default_factory=time.perf_counter)  # for the batch-duration histogram

    def __bool__(self) -> bool:
        return bool(self.tick_ids or self.alerts or self.health or self.sources)

    def merged(self, other: Batch) -> Batch:
        """What both changed, for the state a save writes (ticks, series, panels, reporters)."""
        return Batch(tick_ids=self.tick_ids + other.tick_ids, series=self.series | other.series,
                     panels=self.panels | other.panels, reporters=self.reporters | other.reporters)


def entry_order(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry id as a number pair, for comparing ids.

    >>> entry_order(b"1700000000000-12") < entry_order("1700000000001-0")
    True
    """
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def parse_tick(payload: bytes) -> Tick:
    """A stream entry's tick, with the fields the engine relies on checked: the web process
    validated it, but the stream is also written by replays, imports and hands."""
    tick = orjson.loads(payload)
    if not isinstance(tick, dict):
        raise ValueError("the tick is not a JSON object")
    for name in ("commodity", "market"):
        if not isinstance(tick.get(name), str):
            raise ValueError(f"{name} is missing or not text")
    for name in ("price", "ts"):
        value = tick.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ValueError(f"{name} is missing or not a number")
    tick.setdefault("province", "")
    tick.setdefault("unit", "")
    return cast(Tick, tick)  # the fields a Tick must have are checked above


def publish(client: Any, messages: list[bytes]) -> None:
    """Messages on ``pw:events`` as one (see ``batched``); a cluster client sends it to one node,
    and classic pub/sub reaches every node from there."""
    if messages:
        client.publish(keys.EVENTS, batched(messages))


def batched(messages: list[bytes]) -> bytes:
    """A batch's messages as one pub/sub message: a JSON array of them (server/hub.py takes
    both), so a batch of 500 prices costs one PUBLISH, not 500.

    >>> batched([b'{"type":"price"}']), batched([b'{"a":1}', b'{"b":2}'])
    (b'{"type":"price"}', b'[{"a":1},{"b":2}]')
    """
    return messages[0] if len(messages) == 1 else b"[" + b",".join(messages) + b"]"
