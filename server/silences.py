"""Silences and acknowledgements over HTTP, stored in Redis. The logic is in rules/silences.py.

``routes`` (mounted by server/app.py; handlers use ``request.app.state.redis``, redis.asyncio, and
``request.app.state.gate``: changes need an operator's token, reads a reader's unless public):

- ``POST /api/v1/silences`` {matchers, starts_at, ends_at | duration, author, comment} -> 201
  {"silence": {...}}; errors 422 ``{"errors": [{"field", "reason", "detail"}]}``, among them a
  matcher naming a label no alert of the rules in force carries (``unknown_label``) or a value
  no alert has (``unknown_value``); 409 when ``MAX_LIVE`` silences are already active or pending
- ``GET /api/v1/silences?state=active|pending|expired`` -> {"silences": [...]} (newest first)
- ``GET /api/v1/silences/{id}``, ``DELETE /api/v1/silences/{id}`` (expires it; kept for audit
  PASARWATCH_SILENCE_RETENTION_DAYS, and at most the newest ``EXPIRED_KEPT``: right after each
  change no more are kept; silences that run out between changes wait for the next)
- ``POST /api/v1/alerts/{key}/ack`` {by, comment} -> {"ack": {...}}; publishes
  ``{"type": "ack", "key", "by", "at"}`` on ``pw:events``

Its keys, ``pw:silences``, ``pw:silences:ends`` and ``pw:acks``, are named with their types in
base/keys.py.

Every change to a silence is also published as ``{"type": "silence", "silence": {...}}`` on
``pw:events``. Writing the records is stores/silences.py's, which the engine and the bot share.
"""
from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rules.silences import SilenceError, expire, new_silence, silence_state
from server.access import requires
from stores import partitioned
from stores.silences import acknowledge, announce, save_forgetting
from base import keys
from base.keys import RULES_STATUS  # the engine's Rulebook.status(): its labels check new silences

__all__ = ["routes"]

SILENCES = keys.SILENCES
SILENCE_ENDS = keys.SILENCE_ENDS
ACKS = keys.ACKS
EVENTS = keys.EVENTS
MAX_BODY = 64 * 1024
STATES = ("active", "pending", "expired")
MAX_LIVE = 1000  # the engine checks every alert against each live silence


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def _errors(errors: list[dict], status: int = 422) -> Response:
    return _json({"errors": errors}, status)


async def _body(request: Request) -> tuple[Any, Response | None]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        too_large = {"field": "body", "reason": "body_too_large", "detail": f"body above {MAX_BODY} bytes"}
        return None, _errors([too_large], 413)
    if not raw.strip():
        return {}, None
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError as exc:
        return None, _errors([{"field": "body", "reason": "invalid_json", "detail": f"body is not JSON: {exc}"}])


@requires("operate")
async def create_silence(request: Request) -> Response:
    body, problem = await _body(request)
    if problem is not None:
        return problem
    try:
        silence = new_silence(body, time.time(), known=await _known_labels(request))
    except SilenceError as exc:
        return _errors(exc.errors)
    live = await request.app.state.redis.zcount(SILENCE_ENDS, f"({time.time()}", "+inf")
    if live >= MAX_LIVE:
        return _errors([{"field": "body", "reason": "too_many_silences",
                         "detail": f"{live} silences are active or pending, the most there can be; "
                                   "expire some first (DELETE /api/v1/silences/{id})"}], 409)
    await _save(request, silence)
    return _json({"silence": {**silence, "state": silence_state(silence, time.time())}}, 201)


async def _save(request: Request, silence: dict) -> None:
    """Store a new or changed silence, forgetting expired ones past their retention, and announce it."""
    redis = request.app.state.redis
    retention = request.app.state.settings.silence_retention_days * 86400
    events = await save_forgetting(redis, silence, time.time(), retention)
    await announce(redis, events)


@requires("read")
async def list_silences(request: Request) -> Response:
    wanted = request.query_params.get("state")
    if wanted not in (None, "", *STATES):
        return _errors([{"field": "state", "reason": "bad_query",
                         "detail": "state must be active, pending or expired"}])
    now = time.time()
    rows = await request.app.state.redis.hvals(SILENCES)
    silences = []
    for raw in rows:
        silence = orjson.loads(raw)
        silence["state"] = silence_state(silence, now)
        if not wanted or silence["state"] == wanted:
            silences.append(silence)
    silences.sort(key=lambda s: s["created_at"], reverse=True)
    return _json({"silences": silences})


@requires("read")
async def get_silence(request: Request) -> Response:
    silence = await _stored(request)
    if silence is None:
        return _not_found(request)
    return _json({"silence": {**silence, "state": silence_state(silence, time.time())}})


@requires("operate")
async def delete_silence(request: Request) -> Response:
    silence = await _stored(request)
    if silence is None:
        return _not_found(request)
    now = time.time()
    ended = expire(silence, now, request.query_params.get("by"))
    if ended is not silence:
        await _save(request, ended)
    return _json({"silence": {**ended, "state": silence_state(ended, now)}})


@requires("operate")
async def ack_alert(request: Request) -> Response:
    key = request.path_params["key"]
    body, problem = await _body(request)
    if problem is not None:
        return problem
    if not isinstance(body, dict):
        return _errors([{"field": "body", "reason": "bad_type", "detail": "an acknowledgement is a JSON object"}])
    by, comment = body.get("by"), body.get("comment", "")
    errors = []
    if not isinstance(by, str) or not by.strip() or len(by) > 200:
        errors.append({"field": "by", "reason": "required", "detail": "by: who acknowledges (at most 200 characters)"})
    if not isinstance(comment, str) or len(comment) > 1000:
        errors.append({"field": "comment", "reason": "bad_type",
                       "detail": "comment is text of at most 1000 characters"})
    if errors or not isinstance(by, str):
        return _errors(errors)
    redis = request.app.state.redis
    if not await partitioned.has_field(redis, request.app.state.partitions, "firing", key):
        return _errors([{"field": "key", "reason": "not_firing", "detail": f"no firing alert has key {key!r}"}], 404)
    events: list[bytes] = []
    async with redis.pipeline(transaction=True) as pipe:
        ack = acknowledge(pipe, key, by.strip(), time.time(), events, comment.strip())
        await pipe.execute()
    await announce(redis, events)
    return _json({"key": key, "ack": ack})


async def _known_labels(request: Request) -> dict | None:
    """The labels the alerts of the rules in force carry, as the engine reported them; None
    before it has (matchers are then not checked against them)."""
    raw = await request.app.state.redis.get(RULES_STATUS)
    labels = orjson.loads(raw).get("labels") if raw is not None else None
    return labels if isinstance(labels, dict) else None


async def _stored(request: Request) -> dict | None:
    raw = await request.app.state.redis.hget(SILENCES, request.path_params["id"])
    return orjson.loads(raw) if raw is not None else None


def _not_found(request: Request) -> Response:
    return _errors([{"field": "id", "reason": "not_found",
                     "detail": f"no silence has id {request.path_params['id']!r}"}], 404)


routes: list = [
    Route("/api/v1/silences", create_silence, methods=["POST"]),
    Route("/api/v1/silences", list_silences, methods=["GET"]),
    Route("/api/v1/silences/{id}", get_silence, methods=["GET"]),
    Route("/api/v1/silences/{id}", delete_silence, methods=["DELETE"]),
    Route("/api/v1/alerts/{key:path}/ack", ack_alert, methods=["POST"]),
]
