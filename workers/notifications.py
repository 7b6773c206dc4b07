"""Notification records in Redis: what was (or will be) sent to which chat, and how it went.

A notification is one chat's message about one flush of an alert group (``workers.groups``):
the group's alerts that chat hears of. Its id is derived from the alert event that opened it
and the chat (``pair_id``), or for a reminder from the group, its flush and the chat
(``flush_id``); the RQ job that delivers it is named after it.

Its keys, ``pw:notif:{id}`` (hash), ``pw:notif:{id}:items``, ``pw:notif:index``,
``pw:notif:due`` and ``pw:notif:lease:{id}``, are named with their types in base/keys.py.

States: ``pending`` (queued, waiting for a send slot or a retry), then ``sent``,
``failed`` (with the reason; RQ's failed registry also holds the job when retries ran out) or
``not_sent`` (never attempted, with the reason: no bot token, muted).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from base import keys
from workers.messages import OutMessage

INDEX = keys.NOTIF_INDEX
DUE = keys.NOTIF_DUE
STATES = ("pending", "sent", "failed", "not_sent")
FINAL = frozenset({"sent", "failed", "not_sent"})
INDEX_CAP = 5000
RETENTION = 7 * 86400  # seconds records and dedup markers are kept
# Added to a deadline: the RQ scheduler looks for due jobs once a second.
SCHEDULER_SLACK = 2.0


def record_key(nid: str) -> str:
    return keys.NOTIF.of(id=nid)


def items_key(nid: str) -> str:
    return keys.NOTIF_ITEMS.of(id=nid)


def lease_key(nid: str) -> str:
    return keys.NOTIF_LEASE.of(id=nid)


def pair_id(alert: dict, chat: int) -> str:
    """Identity of "this alert event for this chat": alert key, state, stream id and chat.

    >>> firing = {"key": "r/c/m", "state": "firing", "id": "1-0"}
    >>> pair_id(firing, 42)
    '702f452544c5156916f855f1'
    >>> pair_id(firing, 42) == pair_id(dict(firing), 42), pair_id(firing, 42) == pair_id(firing, 43)
    (True, False)
    """
    text = f"{alert.get('key')}|{alert.get('state')}|{alert.get('id')}|{chat}"
    return hashlib.sha1(text.encode()).hexdigest()[:24]


def flush_id(flush: str, chat: int) -> str:
    """Identity of a notification by the group flush that made it (``flush`` names it) and the chat."""
    return hashlib.sha1(f"{flush}|{chat}".encode()).hexdigest()[:24]


def job_id(nid: str, attempt: str = "") -> str:
    """RQ job id for a notification (``attempt`` names a reschedule or a recovery)."""
    return f"notif-{nid}-{attempt}" if attempt else f"notif-{nid}"


@dataclass
class Record:
    id: str
    chat: int
    state: str
    reason: str = ""
    created: float = 0.0
    updated: float = 0.0
    due: float = 0.0
    count: int = 0
    sealed: bool = False
    parts: list[OutMessage] | None = None
    sent_parts: int = 0
    message_ids: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    attempts: int = 0
    slot: float | None = None

    @classmethod
    def from_hash(cls, data: dict[bytes, bytes]) -> Record:
        text = {k.decode(): v.decode() for k, v in data.items()}
        parts = orjson.loads(text["parts"]) if text.get("parts") else None
        return cls(
            id=text["id"], chat=int(text["chat"]), state=text.get("state", "pending"),
            reason=text.get("reason", ""), created=float(text.get("created") or 0),
            updated=float(text.get("updated") or 0), due=float(text.get("due") or 0),
            count=int(text.get("count") or 0), sealed=text.get("sealed") == "1",
            parts=[OutMessage.from_json(p) for p in parts] if parts is not None else None,
            sent_parts=int(text.get("sent_parts") or 0),
            message_ids=orjson.loads(text["message_ids"]) if text.get("message_ids") else [],
            keys=orjson.loads(text["keys"]) if text.get("keys") else [],
            attempts=int(text.get("attempts") or 0),
            slot=float(text["slot"]) if text.get("slot") else None,
        )

    def to_json(self) -> dict[str, Any]:
        """What GET /api/v1/notifications shows of a record."""
        return {
            "id": self.id, "chat": self.chat, "state": self.state, "reason": self.reason,
            "created": self.created, "updated": self.updated, "due": self.due,
            "alerts": self.count, "keys": self.keys, "attempts": self.attempts,
            "parts": len(self.parts) if self.parts is not None else None,
            "sent_parts": self.sent_parts, "message_ids": self.message_ids,
        }


# --- creating (dispatcher) ------------------------------------------------------------------

def queue_create(pipe: Any, nid: str, chat: int, alert_blobs: list[bytes], now: float, lease: float) -> None:
    """A new notification for ``chat`` about these alert events, to be delivered now."""
    pipe.hset(record_key(nid), mapping={
        "id": nid, "chat": chat, "state": "pending", "reason": "queued",
        "created": now, "updated": now, "due": now, "count": len(alert_blobs), "sealed": 0,
        "sent_parts": 0, "attempts": 0,
    })
    pipe.rpush(items_key(nid), *alert_blobs)
    pipe.zadd(INDEX, {nid: now})
    pipe.zremrangebyrank(INDEX, 0, -INDEX_CAP - 1)
    pipe.zadd(DUE, {nid: now + lease + SCHEDULER_SLACK})


# --- progress (worker) ----------------------------------------------------------------------

def load(client: Any, nid: str) -> Record | None:
    data = client.hgetall(record_key(nid))
    return Record.from_hash(data) if data else None


def load_items(client: Any, nid: str) -> list[dict]:
    return [orjson.loads(blob) for blob in client.lrange(items_key(nid), 0, -1)]


def save_parts(client: Any, nid: str, parts: list[OutMessage], keys: list[str], count: int,
               now: float) -> None:
    client.hset(record_key(nid), mapping={
        "parts": orjson.dumps([p.to_json() for p in parts]), "keys": orjson.dumps(keys),
        "count": count, "updated": now, "reason": "sending",
    })


def part_sent(client: Any, record: Record, index: int, message_id: int, now: float) -> None:
    record.sent_parts = index + 1
    record.message_ids.append(message_id)
    client.hset(record_key(record.id), mapping={
        "sent_parts": record.sent_parts, "message_ids": orjson.dumps(record.message_ids),
        "updated": now, "slot": "",
    })


def set_pending(client: Any, nid: str, reason: str, now: float, deadline: float,
                slot: float | None = None) -> None:
    """Still pending (waiting for a slot or a retry); a worker must finish it by ``deadline``."""
    with client.pipeline() as pipe:
        pipe.hset(record_key(nid), mapping={"reason": reason, "updated": now, "slot": slot or ""})
        pipe.zadd(DUE, {nid: deadline})
        pipe.execute()


def count_attempt(client: Any, nid: str) -> int:
    return int(client.hincrby(record_key(nid), "attempts", 1))


def finalize(client: Any, nid: str, state: str, reason: str, now: float) -> None:
    if state not in FINAL:
        raise ValueError(f"not a final state: {state}")
    with client.pipeline() as pipe:
        pipe.hset(record_key(nid), mapping={"state": state, "reason": reason, "updated": now, "slot": ""})
        pipe.zrem(DUE, nid)
        pipe.expire(record_key(nid), RETENTION)
        pipe.expire(items_key(nid), RETENTION)
        pipe.execute()


# --- listing (API) --------------------------------------------------------------------------

def listing(hashes: list[dict[bytes, bytes]]) -> list[dict]:
    """Records as the API shows them, skipping hashes that have expired (empty)."""
    return [Record.from_hash(data).to_json() for data in hashes if data]
