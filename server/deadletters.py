"""Ticks the engine could not process, for an operator to list, replay or discard.

The engine moves a tick that fails on its own (after its batch was retried one tick at a time,
see server/engine.py ``Engine._isolate``) to its partition's stream ``deadletter``
(``pw:{pN}:deadletter``) with the error and its original id, and acknowledges it, so the ticks
behind it flow. Nothing is lost: the entry keeps the tick as it was accepted. A dead letter's id
is ``<partition>:<stream id>`` (``3:1719800001234-0``): the partition it lies in, then its entry
there. An operator (role ``operate``):

- ``GET /api/v1/deadletters?limit=`` -> ``{"deadletters": [{id, partition, tick_id, error, at, tick}],
  "total"}`` (newest first, from every partition; ``total`` counts every tick ever dead-lettered)
- ``POST /api/v1/deadletters/{id}/replay`` -> 202 ``{"replayed": id, "ids": [new stream id]}``: the
  tick is appended again as a new entry, to its commodity's partition (``replay_of`` names the
  original), either as it was (after a fix of the engine) or, with a JSON tick as body, corrected
  (validated like any tick)
- ``DELETE /api/v1/deadletters/{id}`` -> 200: discarded for good (the audit chain keeps the original)

The same from the shell: ``pasarwatch deadletter list|replay ID|discard ID``.
"""
from __future__ import annotations

import argparse
import asyncio
import re
import sys
from typing import Any
import time

import orjson
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from base.catalog import Catalog, load_catalog
from base import keys
from base.keys import Partition
from server.audit import AuditFiles, Witness
from base.config import Settings
from server.access import requires
from server.ingest import TickAppender
from server.responses import ORJSONResponse, error
from server.ticks import validate_ticks
from stores import partitioned
from stores.partitions import partition_count_async

MAX_LIST = 1_000
LETTER_ID = re.compile(r"([0-9]{1,6}):([0-9]{1,20}-[0-9]{1,20})")
MAX_CORRECTION_BYTES = 64 * 1024


class DeadLetterError(LookupError):
    """No dead-lettered tick with that id, or a correction that is not a valid tick."""

    def __init__(self, status: int, field: str, reason: str, detail: str):
        super().__init__(detail)
        self.status, self.field, self.reason, self.detail = status, field, reason, detail


def _entry(partition: Partition, entry_id: bytes, fields: dict) -> dict:
    raw = fields.get(b"t", b"")
    try:
        tick = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        tick = None
    return {
        "id": f"{partition.number}:{entry_id.decode()}",
        "partition": partition.number,
        "tick_id": fields.get(b"id", b"").decode(),
        "error": fields.get(b"error", b"").decode(errors="replace"),
        "at": float(fields.get(b"at", b"0") or 0),
        "tick": tick,
        "raw": None if tick is not None else raw.decode(errors="replace")[:1000],
    }


async def list_deadletters(redis: Redis, partitions: list[Partition], limit: int = 100) -> dict:
    """The newest ``limit`` dead letters of all partitions (by their stream ids: times)."""
    limit = max(1, min(limit, MAX_LIST))
    pipe = redis.pipeline(transaction=False)
    for partition in partitions:
        pipe.xrevrange(partition.deadletter, count=limit)
    # redis-py types replies for either decode_responses setting; this client's are bytes.
    replies: Any = await pipe.execute() if partitions else []
    letters = [(_stream_order(entry_id), _entry(partition, entry_id, fields))
               for partition, entries in zip(partitions, replies) for entry_id, fields in entries]
    letters.sort(key=lambda letter: letter[0], reverse=True)
    total = await partitioned.counter_sum(redis, partitions, "deadlettered")
    return {"deadletters": [letter for _, letter in letters[:limit]], "total": total}


def _stream_order(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


async def replay(redis: Redis, partitions: list[Partition], appender: TickAppender, catalog: Catalog,
                 letter_id: str, correction: object = None, max_future_skew: float = 300.0) -> dict:
    """Append the dead-lettered tick (or its ``correction``) again, through the process' one
    appender (it routes the tick to its commodity's partition and extends that partition's audit
    chain), and drop the dead letter. The original ``seq`` is not reused: the pair was taken when
    it was accepted."""
    partition, entry_id = _found(letter_id, partitions)
    found: Any = await redis.xrange(partition.deadletter, min=entry_id, max=entry_id, count=1)  # bytes
    if not found:
        raise DeadLetterError(404, "id", "not_found", f"no dead-lettered tick {letter_id}")
    letter = _entry(partition, *found[0])
    original = letter["tick"] if isinstance(letter["tick"], dict) else {}
    if correction is None:
        if not original:
            raise DeadLetterError(422, "body", "required",
                                  "the stored tick is not readable JSON: send a corrected tick as the body")
        tick = {k: v for k, v in original.items() if k not in ("id", "seq")}
    else:
        validated = validate_ticks([correction], catalog, time.time(), max_future_skew)
        if validated.errors:
            first = validated.errors[0]
            raise DeadLetterError(422, first["field"], first["reason"], first["detail"])
        tick = {k: v for k, v in validated.ticks[0][1].items() if k != "seq"}
        if original.get("device"):
            tick["device"] = original["device"]
    tick["replay_of"] = letter["tick_id"]
    ids = await appender.append([tick])
    await redis.xdel(partition.deadletter, entry_id)
    return {"replayed": letter_id, "ids": [i for i in ids if i]}


async def discard(redis: Redis, partitions: list[Partition], letter_id: str) -> dict:
    partition, entry_id = _found(letter_id, partitions)
    if not await redis.xdel(partition.deadletter, entry_id):
        raise DeadLetterError(404, "id", "not_found", f"no dead-lettered tick {letter_id}")
    return {"discarded": letter_id}


def _found(letter_id: str, partitions: list[Partition]) -> tuple[Partition, str]:
    """The partition and stream id a dead letter's id (``<partition>:<stream id>``) names."""
    matched = LETTER_ID.fullmatch(letter_id)
    if matched is None or int(matched[1]) >= len(partitions):
        raise DeadLetterError(404, "id", "not_found", f"no dead-lettered tick {letter_id[:40]!r} (an id is "
                                                      f"<partition>:<stream id>, as listed)")
    return partitions[int(matched[1])], matched[2]


def _refused(exc: DeadLetterError) -> Response:
    return error(exc.status, exc.field, exc.reason, exc.detail)


@requires("operate")
async def get_deadletters(request: Request) -> Response:
    try:
        limit = int(request.query_params.get("limit", "100"))
    except ValueError:
        return error(422, "limit", "bad_type", "limit must be an integer")
    return ORJSONResponse(await list_deadletters(request.app.state.redis, request.app.state.partitions, limit))


@requires("operate")
async def post_replay(request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_CORRECTION_BYTES:
        return error(413, "body", "too_large", f"a corrected tick is at most {MAX_CORRECTION_BYTES} bytes")
    correction = None
    if body.strip():
        try:
            correction = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return error(422, "body", "invalid_json", str(exc))
    try:
        state = request.app.state
        result = await replay(state.redis, state.partitions, state.ingestor.appender, state.catalog,
                              request.path_params["id"], correction, state.settings.max_future_skew)
    except DeadLetterError as exc:
        return _refused(exc)
    return ORJSONResponse(result, status_code=202)


@requires("operate")
async def delete_deadletter(request: Request) -> Response:
    try:
        return ORJSONResponse(await discard(request.app.state.redis, request.app.state.partitions,
                                            request.path_params["id"]))
    except DeadLetterError as exc:
        return _refused(exc)


routes = [
    Route("/api/v1/deadletters", get_deadletters),
    Route("/api/v1/deadletters/{id}/replay", post_replay, methods=["POST"]),
    Route("/api/v1/deadletters/{id}", delete_deadletter, methods=["DELETE"]),
]


# -- the command: pasarwatch deadletter list|replay|discard ----------------------------------------

def add_commands(commands) -> None:
    parser = commands.add_parser("deadletter", help="ticks the engine could not process: list, replay, discard")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the dead-lettered ticks, newest first")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true", help="as JSON, as GET /api/v1/deadletters")
    replaying = actions.add_parser("replay", help="append a dead-lettered tick to the stream again")
    replaying.add_argument("id", help="its id, <partition>:<stream id> (from list)")
    replaying.add_argument("--tick", help="the corrected tick as JSON, validated like any tick")
    discarding = actions.add_parser("discard", help="drop a dead-lettered tick for good")
    discarding.add_argument("id", help="its id, <partition>:<stream id> (from list)")
    parser.set_defaults(run=_command)


def _command(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_run(settings, args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    redis = Redis.from_url(settings.redis_url)
    try:
        partitions = keys.partitions(await partition_count_async(redis, settings.partitions))
        if args.action == "list":
            listed = await list_deadletters(redis, partitions, args.limit)
            if args.json:
                print(orjson.dumps(listed).decode())
                return 0
            for letter in listed["deadletters"]:
                shown = orjson.dumps(letter["tick"]).decode() if letter["tick"] is not None else letter["raw"]
                print(f"{letter['id']}  tick {letter['tick_id']}  {letter['error']}\n    {shown}")
            print(f"{len(listed['deadletters'])} listed, {listed['total']} dead-lettered in all")
            return 0
        if args.action == "replay":
            correction = orjson.loads(args.tick) if args.tick else None
            appender = TickAppender(redis, Witness(AuditFiles(settings.audit_dir)), partitions)
            result = await replay(redis, partitions, appender, load_catalog(settings.catalog_dir), args.id,
                                  correction, settings.max_future_skew)
            print(f"replayed {args.id} as {', '.join(result['ids'])}")
            return 0
        print(f"discarded {(await discard(redis, partitions, args.id))['discarded']}")
        return 0
    except orjson.JSONDecodeError as exc:
        print(f"pasarwatch deadletter: --tick is not JSON: {exc}", file=sys.stderr)
        return 2
    except DeadLetterError as exc:
        print(f"pasarwatch deadletter: {exc.field}: {exc.reason}: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        await redis.aclose()
