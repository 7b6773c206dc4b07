"""One partition's saved state: what ``Engine`` writes with a save and loads on a start.

Each piece is a field of its own hash, so a commit writes what its reads touched, not what the
whole partition holds: the detector state of each series (``state_series``), each commodity's
cross-market panel and surge (``state_panel``, ``state_surge``), each alert's rule state
(``state_rules``), a small record per series and per source, and the engine's own document
(its clock, alert ids, and the reads to judge again after a crash; written with every commit
by ``Engine.commit``). A piece this code cannot read (an older format, or not written by the
engine) starts fresh, logged, and nothing in it is run.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson

from base import keys
from detectors.crossmarket import CrossMarket
from detectors.series import SeriesState
from detectors.surge import PanelSurge
from rules.lifecycle import AlertState
from server.batch import Batch
from server.checkpoint import StateError, decode_state, encode_state
from server.reliability import SourceRecord

if TYPE_CHECKING:
    from server.engine import Engine

log = logging.getLogger("pasarwatch.engine")


def load_checkpoint(engine: Engine) -> None:
    """Load the partition's saved state into ``engine`` (what ``write_state`` wrote); a piece this
    code cannot read starts fresh, logged."""
    for raw_key, blob in engine.redis.hgetall(engine.k.state_series).items():
        commodity, market = raw_key.decode().split("/", 1)
        state = decoded(blob, raw_key, SeriesState)
        if state is not None:
            engine.stack.set_series_state((commodity, market), state)
    for raw_key, blob in engine.redis.hgetall(engine.k.state_panel).items():
        state = decoded(blob, raw_key, CrossMarket)
        if state is not None:
            engine.stack.set_panel_state(raw_key.decode(), state)
    for raw_key, blob in engine.redis.hgetall(engine.k.state_surge).items():
        state = decoded(blob, raw_key, PanelSurge)
        if state is not None:
            engine.stack.set_surge_state(raw_key.decode(), state)
    for raw_key, blob in engine.redis.hgetall(engine.k.state_rules).items():
        state = decoded(blob, raw_key, AlertState)
        if state is not None:
            engine.rules.states[raw_key.decode()] = state
    engine_state = engine.redis.get(engine.k.state_engine)
    saved = decoded(engine_state, engine.k.state_engine.encode(), dict) if engine_state else None
    if saved and not isinstance(saved.get("clock"), type(engine.clock)):
        log.warning("the engine's own state in %s is not of this version; starting it fresh", engine.k.state_engine)
        saved = None
    if saved:
        engine.clock = saved["clock"]
        engine.last_alert = saved["last_alert"]
        # Written by the first v1 engines, before these moved to one hash field per series.
        engine.step.provinces = saved.get("provinces", {})
        engine.step.last_price = saved.get("last_price", {})
        engine.step.latest_ts = saved.get("latest_ts", {})
        engine.arrived = saved.get("arrived", {})
        engine.sources = saved.get("sources", engine.sources)  # written so before one field per source
        engine.replay = list(saved.get("reads", []))  # written since the state was saved each SAVE_EVERY reads
    for raw_source, blob in engine.redis.hgetall(engine.k.state_sources).items():
        try:
            ticks, quarantined, state = orjson.loads(blob)
            engine.sources.sources[raw_source.decode()] = SourceRecord(float(ticks), float(quarantined), str(state))
        except (ValueError, TypeError) as exc:  # not written by us: that source starts fresh
            log.warning("cannot restore %s of %s (%s)", engine.k.state_sources, raw_source[:200], exc)
    for raw_key, blob in engine.redis.hgetall(engine.k.state_series_info).items():
        try:
            province, last_price, latest_ts, arrived = orjson.loads(blob)
            series = tuple(raw_key.decode().split("/", 1))
            engine.step.provinces[series], engine.step.latest_ts[series] = str(province), float(latest_ts)
            if last_price is not None:
                engine.step.last_price[series] = float(last_price)
            if arrived is not None:
                engine.arrived[series] = float(arrived)
        except (ValueError, TypeError) as exc:  # not written by us: that series starts fresh
            log.warning("cannot restore %s of %s (%s)", engine.k.state_series_info, raw_key[:200], exc)


def write_state(engine: Engine, pipe: Any, changes: Batch) -> None:
    """The state of what ``changes`` touched, and the XACK of its ticks (see ``commit``)."""
    if changes.series:  # one HSET per hash, not one per field
        pipe.hset(engine.k.state_series, mapping={keys.series_key(*series): encode_state(
            engine.stack.series_state(series)) for series in changes.series})
    if changes.panels:
        pipe.hset(engine.k.state_panel, mapping={commodity: encode_state(engine.stack.panel_state(commodity))
                                               for commodity in changes.panels})
        surges = {commodity: engine.stack.surge_state(commodity) for commodity in changes.panels}
        if any(surge is not None for surge in surges.values()):
            pipe.hset(engine.k.state_surge, mapping={commodity: encode_state(surge)
                                                   for commodity, surge in surges.items() if surge is not None})
    for key in engine.rules.dirty:
        state = engine.rules.states.get(key)
        if state is None:
            pipe.hdel(engine.k.state_rules, key)
        else:
            pipe.hset(engine.k.state_rules, key, encode_state(state))
    engine.rules.dirty.clear()
    # What the engine knows of each series besides its detectors: one small field per series
    # touched, so a commit costs what the reads did, not what the whole system holds.
    info = {keys.series_key(*series): orjson.dumps([
        engine.step.provinces.get(series, ""), engine.step.last_price.get(series),
        engine.step.latest_ts[series], engine.arrived.get(series)])
        for series in changes.series if series in engine.step.latest_ts}
    if info:
        pipe.hset(engine.k.state_series_info, mapping=info)
    if changes.reporters:  # one small field per device heard from, not all of them
        records = {reporter: engine.sources.sources[reporter] for reporter in changes.reporters}
        pipe.hset(engine.k.state_sources, mapping={
            reporter: orjson.dumps([record.ticks, record.quarantined, record.state])
            for reporter, record in records.items()})
    if changes.tick_ids:
        pipe.xack(engine.k.ticks, keys.ENGINE_GROUP, *changes.tick_ids)


def decoded(blob: bytes, key: bytes, expect: type) -> Any:
    """A checkpointed state, or None when this code cannot read it (an older format, or not
    written by the engine): that state starts fresh, logged, and nothing in it is run."""
    try:
        return decode_state(blob, expect)
    except StateError as exc:
        log.warning("cannot restore state of %s (%s); starting it fresh", key.decode(errors="replace"), exc)
        return None


