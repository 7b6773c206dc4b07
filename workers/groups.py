"""Alert groups in Redis: alerts taken into their receivers' groups, and groups flushed when due.

The timing is ``workers.grouping`` (pure, Alertmanager's); this module stores groups and
turns a flush into notifications, one per chat, each delivered by an RQ job.

Its keys, ``pw:notif:group:*``, ``pw:notif:groups:due``, ``pw:notif:in:*`` and
``pw:notif:staged:*``, are named with their types in base/keys.py.

``gid`` is derived from the routing tree's group key (route, receiver, ``group_by`` values).
A stored event's ``routes`` are narrowed to its receiver's chats and topics, so a flush sends
each alert to the chats that receiver names and the subscribers of that alert.

Every step is one Redis transaction that WATCHes the state keys of the groups it touches (any
write to a group's alerts rewrites its state key too): staging an event sets its marker and
the stream entry is acknowledged (in the data Redis) only after it (a replay finds the
marker and stages nothing twice), and a
flush creates its notifications, queues their delivery jobs and moves the group's timer in
one. The timers live in Redis (``pw:notif:groups:due``): the dispatcher flushes what is due
each time the engine calls it, and the worker's sweep does when the engine is down.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import WatchError
from rq import Queue

from rules.silences import is_silenced
from base import keys
from workers import notifications as store
from workers.grouping import RESOLVED, GroupState, Timing, admit, is_news, plan_flush, withdraw
from workers.jobs import QUEUE, enqueue_delivery
from workers.settings import NotifySettings
from workers.subscriptions import topics_for

GROUPS_DUE = keys.GROUPS_DUE
LEGACY_GROUP = "default"
FLUSH_BATCH = 100  # groups flushed per call at most; the next call takes the rest


def gid_of(group_key: str) -> str:
    return hashlib.sha1(group_key.encode()).hexdigest()[:24]


def state_key(gid: str) -> str:
    return keys.GROUP_STATE.of(gid=gid)


def alerts_key(gid: str) -> str:
    return keys.GROUP_ALERTS.of(gid=gid)


def member_key(alert_key: str) -> str:
    return keys.GROUP_MEMBER.of(alert_key=alert_key)


def staged_key(marker: str) -> str:
    return keys.GROUP_STAGED.of(marker=marker)


def marker_of(alert: dict, scope: str = "") -> str:
    """Identity of "this alert event taken into its groups" (``scope``: one held receiver)."""
    text = f"{alert.get('key')}|{alert.get('state')}|{alert.get('id')}|{scope}"
    return hashlib.sha1(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Target:
    """One group an alert event goes into: the receiver's group and its chats."""

    gid: str
    group_key: str
    receiver: str
    timing: Timing
    telegram: tuple[int, ...]
    topics: bool

    @classmethod
    def of(cls, receiver: dict, default_wait: float) -> Target:
        group_key = str(receiver.get("group_key") or f"{receiver.get('route')}:{receiver.get('name')}")
        return cls(gid_of(group_key), group_key, str(receiver.get("name")), Timing.of(receiver, default_wait),
                   tuple(int(c) for c in receiver.get("telegram") or []), bool(receiver.get("topics")))

    @classmethod
    def legacy(cls, routes: dict, window: float) -> Target:
        """For events that carry no routing receivers (written before routing trees, or by
        hand): what arrives within ``window`` goes out as one digest, then is forgotten."""
        return cls(gid_of(LEGACY_GROUP), LEGACY_GROUP, LEGACY_GROUP, Timing(window, window),
                   tuple(int(c) for c in routes.get("telegram") or []), bool(routes.get("topics", True)))

    def narrow(self, alert: dict) -> dict:
        return {**alert, "routes": {"telegram": list(self.telegram), "topics": self.topics}}


def recipients(client: Any, alert: dict, catalog: Any) -> list[int]:
    """Chats that hear of ``alert``: its routes' fixed chats, and subscribers unless routed off."""
    routes = alert.get("routes") or {}
    chats = {int(chat) for chat in routes.get("telegram") or []}
    if routes.get("topics", True):
        commodity = str(alert.get("commodity") or "")
        province = str(alert.get("province") or "")
        market = catalog.markets.get(alert.get("market")) if catalog is not None else None
        if not province and market is not None:
            province = market.province
        chats.update(int(member) for member in client.sunion(topics_for(commodity, province)))
    return sorted(chats)


# --- staging ------------------------------------------------------------------------------------

@dataclass
class _Loaded:
    meta: dict | None
    current: dict | None
    size: int

    @property
    def state(self) -> GroupState | None:
        return GroupState.from_json(self.meta["state"]) if self.meta else None


def stage(client: Any, alert: dict, targets: list[Target], marker: str, now: float, mute: bool = False) -> bool:
    """Take ``alert`` into the groups of ``targets``; False if its marker says it already was.

    A resolve also reaches the other groups that hold the alert (a routing change must not
    leave it firing there); with ``mute`` (the event tells nobody: silenced, inhibited,
    awaiting confirmation) the alert leaves every group it is in, unannounced.
    """
    key = str(alert.get("key"))
    targets = list({t.gid: t for t in targets}.values())  # two routes, one group: taken once
    own = [t.gid for t in targets]
    with client.pipeline() as pipe:
        while True:
            try:
                # Reads go through a plain pipeline (one round trip): the WATCH taken first
                # still voids the transaction if anything read changes before it runs.
                pipe.watch(staged_key(marker), member_key(key), *(state_key(gid) for gid in own))
                with client.pipeline(transaction=False) as read:
                    read.exists(staged_key(marker))
                    read.smembers(member_key(key))
                    taken, members = read.execute()
                fresh = not taken
                others: list[str] = []
                if fresh and (mute or alert.get("state") == RESOLVED):
                    others = sorted({m.decode() for m in members} - set(own))
                    if others:
                        pipe.watch(*(state_key(gid) for gid in others))
                loaded = _load(client, [*own, *others], key) if fresh else {}
                pipe.multi()
                if fresh:
                    for target in targets:
                        _admit(pipe, target.gid, loaded[target.gid], target.narrow(alert), now,
                               {"group_key": target.group_key, "receiver": target.receiver,
                                "timing": target.timing.to_json()})
                    for gid in others:
                        found = loaded[gid]
                        if found.meta is None or found.current is None:
                            continue
                        if mute:
                            _withdraw(pipe, gid, found, key)
                        else:  # the resolve goes where the firing alert went
                            _admit(pipe, gid, found, {**alert, "routes": found.current.get("routes")}, now, None)
                    pipe.set(staged_key(marker), 1, ex=store.RETENTION)
                pipe.execute()
                return fresh
            except WatchError:
                continue


def holds(client: Any, alert_key: str) -> bool:
    """Whether any group holds the alert (a muted event has something to take back)."""
    return bool(client.exists(member_key(alert_key)))


def _load(client: Any, gids: list[str], key: str) -> dict[str, _Loaded]:
    """The groups' state and their copy of alert ``key``, in one round trip."""
    with client.pipeline(transaction=False) as read:
        for gid in gids:
            read.get(state_key(gid))
            read.hget(alerts_key(gid), key)
            read.hlen(alerts_key(gid))
        replies = read.execute()
    loaded = {}
    for index, gid in enumerate(gids):
        raw, current, size = replies[3 * index:3 * index + 3]
        loaded[gid] = _Loaded(orjson.loads(raw) if raw else None, orjson.loads(current) if current else None,
                              int(size))
    return loaded


def _admit(pipe: Any, gid: str, found: _Loaded, event: dict, now: float, meta: dict | None) -> None:
    """Queue the writes that take ``event`` into group ``gid`` (``meta``: the target's config,
    None to keep the group's own)."""
    meta = meta or found.meta
    assert meta is not None, "a group is admitted into with its target's config or its own"
    timing = Timing(**meta["timing"])
    admission = admit(found.state, timing, found.current, event, now, digest=meta["group_key"] == LEGACY_GROUP)
    if admission.state is None:
        return
    key = str(event.get("key"))
    if admission.store:
        pipe.hset(alerts_key(gid), key, orjson.dumps(event))
        pipe.sadd(member_key(key), gid)
    _save(pipe, gid, meta, found.state, admission.state)


def _withdraw(pipe: Any, gid: str, found: _Loaded, key: str) -> None:
    pipe.hdel(alerts_key(gid), key)
    pipe.srem(member_key(key), gid)
    assert found.meta is not None and found.state is not None, "only a stored group holds the alert"
    state = withdraw(found.state, key)
    if found.size <= 1 and state.due is None:
        _end(pipe, gid, [])
    else:
        _save(pipe, gid, found.meta, found.state, state)


def _save(pipe: Any, gid: str, meta: dict, old: GroupState | None, new: GroupState) -> None:
    pipe.set(state_key(gid), orjson.dumps({**meta, "state": new.to_json()}))
    if new.due is None:
        pipe.zrem(GROUPS_DUE, gid)
    elif old is None or old.due != new.due:
        pipe.zadd(GROUPS_DUE, {gid: new.due})


def _end(pipe: Any, gid: str, keys: list[str]) -> None:
    for key in keys:
        pipe.srem(member_key(key), gid)
    pipe.delete(state_key(gid), alerts_key(gid))
    pipe.zrem(GROUPS_DUE, gid)


# --- flushing -----------------------------------------------------------------------------------

def flush_due(client: Any, catalog: Any, settings: NotifySettings, now: float | None = None,
              grace: float = 0.0, silences: Any = None) -> int:
    """Flush every group due by ``now - grace``; returns how many notifications were made.
    ``silences``: the data Redis, where the API keeps silences (default: ``client``, the same)."""
    now = time.time() if now is None else now
    made = 0
    for raw in client.zrangebyscore(GROUPS_DUE, "-inf", now - grace, start=0, num=FLUSH_BATCH):
        made += flush(client, raw.decode(), catalog, settings, now, silences)
    return made


def flush(client: Any, gid: str, catalog: Any, settings: NotifySettings, now: float,
          silences: Any = None) -> int:
    """Flush group ``gid`` if it is due at ``now``; returns how many notifications it made.
    ``silences``: as ``flush_due``'s."""
    queue = Queue(QUEUE, connection=client)
    with client.pipeline() as pipe:
        while True:
            try:
                pipe.watch(state_key(gid))
                raw = pipe.get(state_key(gid))
                meta = orjson.loads(raw) if raw else None
                state = GroupState.from_json(meta["state"]) if meta else None
                if meta is None or state is None or state.due is None or state.due > now:
                    pipe.multi()
                    if state is None or state.due is None:
                        pipe.zrem(GROUPS_DUE, gid)  # a leftover entry: nothing is due
                    pipe.execute()
                    return 0
                alerts = [orjson.loads(blob) for blob in pipe.hvals(alerts_key(gid))]
                plan = plan_flush(state, Timing(**meta["timing"]), alerts, now)
                send = _unsilenced(client if silences is None else silences, plan.send, now)
                notes = _notifications(client, pipe, gid, state, plan.kind, send, catalog) if send else []
                pipe.multi()
                for nid, chat, events in notes:
                    store.queue_create(pipe, nid, chat, [orjson.dumps(e) for e in events], now, settings.lease)
                    enqueue_delivery(queue, nid, settings, pipeline=pipe)
                for key in plan.drop:
                    pipe.hdel(alerts_key(gid), key)
                    pipe.srem(member_key(key), gid)
                if plan.state is None:
                    _end(pipe, gid, [str(e.get("key")) for e in alerts])
                else:
                    _save(pipe, gid, meta, state, plan.state)
                pipe.execute()
                return len(notes)
            except WatchError:
                continue


def _unsilenced(client: Any, events: list[dict], now: float) -> list[dict]:
    """The events no silence mutes at ``now``: a silence made after an alert was taken into its
    group keeps it out of the group's messages (reminders too), as Alertmanager's mute stage
    does; resolves still go out."""
    if not events:
        return events
    from stores.silences import active_silences  # the engine's own read of the silences in force

    silences = active_silences(client, now)
    if not silences:
        return events
    return [e for e in events if e.get("state") == RESOLVED or is_silenced(e, silences, now) is None]


def _notifications(client: Any, pipe: Any, gid: str, state: GroupState, kind: str | None, send: list[dict],
                   catalog: Any) -> list[tuple[str, int, list[dict]]]:
    """One notification per chat: (id, chat, the events it is about)."""
    per_chat: dict[int, list[dict]] = {}
    cache: dict[tuple, list[int]] = {}
    for event in send:
        routes = event.get("routes") or {}
        spec = (tuple(routes.get("telegram") or ()), routes.get("topics", True), event.get("commodity"),
                event.get("province"), event.get("market"))
        if spec not in cache:
            cache[spec] = recipients(client, event, catalog)
        for chat in cache[spec]:
            per_chat.setdefault(chat, []).append(event)
    notes = []
    for chat, events in per_chat.items():
        news = [e for e in events if is_news(state, e)]
        if kind == "change" and not news:
            continue  # nothing of this chat's alerts changed
        # Named after the event that opened it ("this alert event for this chat"), unless that
        # name is taken (the same event reached the chat through another receiver's group).
        nid = store.pair_id(news[0], chat) if news else ""
        notes.append((nid, chat, events))
    named = [nid for nid, _, _ in notes if nid]
    if named:
        pipe.watch(*(store.record_key(nid) for nid in named))
        with client.pipeline(transaction=False) as check:
            for nid in named:
                check.exists(store.record_key(nid))
            taken = {nid for nid, exists in zip(named, check.execute()) if exists}
    else:
        taken = set()
    fallback = f"{gid}|{state.created}|{state.flushes}"
    return [(nid if nid and nid not in taken else store.flush_id(fallback, chat), chat, events)
            for nid, chat, events in notes]
