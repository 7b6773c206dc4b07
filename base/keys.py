"""Names of every Redis key and channel the system uses, each spelled once, with its type and meaning.

``REGISTRY`` is the list docs/architecture.md's key table is made from (``python3 -m base.keys``
prints it; tests/test_keys_doc.py checks the doc against it). A name with ``{field}`` parts is a
pattern: its builder function below fills them in, from the same pattern, so the table and the
code cannot disagree about a key.
"""
from __future__ import annotations

import string
import zlib
from dataclasses import dataclass

TYPES = ("stream", "hash", "zset", "set", "list", "string", "channel")


@dataclass(frozen=True)
class Key:
    name: str  # the key, or its pattern with {field} parts
    type: str  # one of TYPES; "channel" is a pub/sub channel, not a key
    meaning: str  # one line
    ttl: bool = False  # it expires on its own

    @property
    def prefix(self) -> str:
        """The part before the first ``{field}``: what scripts and scans append to."""
        return self.name.split("{", 1)[0]

    def of(self, **fields: object) -> str:
        return self.name.format(**fields)


REGISTRY: list[Key] = []


def _register(name: str, type: str, meaning: str, ttl: bool) -> Key:
    if type not in TYPES:
        raise ValueError(f"{name}: unknown type {type!r}")
    key = Key(name, type, meaning, ttl)
    REGISTRY.append(key)
    return key


def _key(name: str, type: str, meaning: str, ttl: bool = False) -> str:
    """A key with a fixed name: the name. A hash tag is written with doubled braces
    (``pw:{{silences}}``), as in a format string: it is part of the name, not a field."""
    if _fields(name):
        raise ValueError(f"{name}: a name with {{fields}} is a _pattern")
    return _register(name, type, meaning, ttl).name.format()


def _fields(name: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(name) if field]


def _pattern(name: str, type: str, meaning: str, ttl: bool = False) -> Key:
    """A key per something (``{field}`` parts): build it with ``.of(field=...)``."""
    if not _fields(name):
        raise ValueError(f"{name}: a pattern needs a {{field}}")
    return _register(name, type, meaning, ttl)


# Partitions. Ticks are routed by commodity to one of P partitions (``partition_of``); each
# partition has its own stream, audit chain, engine state, alerts and counters, all named with
# the hash tag ``{pN}`` so that every transaction and script stays in one Redis Cluster slot.
# ``{tag}`` below is that tag, braces included (``Partition(3).ticks == "pw:{p3}:ticks"``).
PARTITION_COUNT = _key("pw:partitions", "string", "P, the number of tick partitions: fixed at the first write")
LEGACY_TICKS = _key("pw:ticks", "stream", "the one tick stream of versions before partitions: no longer written or "
                    "read; an engine logs an error while it exists")
ENGINES = _key("pw:engines", "zset", "engine process id -> the wall time it last renewed its leases (live engines)")
LEASE = _pattern("pw:{tag}:lease", "string", "the engine that owns the partition (its id), renewed while it lives",
                 ttl=True)

# Ingest and the audit chain (server/ingest.py, server/audit.py), per partition
TICKS = _pattern("pw:{tag}:ticks", "stream",
                 "a partition's accepted ticks: field `t` the tick (orjson), `h` its audit chain hash")
SEQ = _pattern("pw:{tag}:seq:{device}/{source}", "zset",
               "sequence numbers seen from a device's source in the partition (dedup), capped")
AUDIT_HEAD = _pattern("pw:{tag}:audit:head", "string", "chain hash of the partition's newest accepted tick")
AUDIT_ANCHOR = _pattern("pw:{tag}:audit:anchor", "string",
                        '"<id> <hash>" of the partition\'s last tick trimmed away by retention')
ACCEPTED = _pattern("pw:{tag}:stats:accepted", "string", "counter: ticks of the partition acknowledged with 202")
REFUSED = _key("pw:stats:refused", "hash", "4xx refusals: reason -> count")
CREDENTIALS = _key("pw:{{credentials}}", "hash", "key id -> credential JSON (role, markets, the token's sha256)")
CREDENTIAL_NAMES = _key("pw:{{credentials}}:names", "hash", '"kind:name" -> key id (for revoke and list)')

# The engine (server/engine.py), per partition
ENGINE_GROUP = "engine"  # consumer group of each partition's ticks
ENGINE_CONSUMER = "owner"  # one consumer per partition: whoever holds the lease reads as it
ALERTS = _pattern("pw:{tag}:alerts", "stream",
                  "a partition's alert events, field `a` (orjson); read by the dispatcher's group `notify`")
EVENTS = _key("pw:events", "channel", "price, alert, health, source, rules, silence, ack and demo messages (orjson)")
LATEST = _pattern("pw:{tag}:latest", "hash", "series key `commodity/market` -> its latest price message")
LATEST_TS = _pattern("pw:{tag}:latest:ts", "hash",
                     "series key -> ts of its newest committed tick (what the 202 calls late against)")
FIRING = _pattern("pw:{tag}:firing", "hash", "alert key -> its newest firing event")
HISTORY = _pattern("pw:{tag}:hist:{commodity}/{market}", "stream",
                   "recent price messages of a series, field `m` (capped)")
HEALTH = _pattern("pw:{tag}:health", "hash", "series key -> its latest health message (stale / ok)")
SOURCES = _pattern("pw:{tag}:sources", "hash", "source -> its reliability standing in the partition (when it changed)")
STATE_SERIES = _pattern("pw:{tag}:state:series", "hash", "series key -> its detectors' state document")
STATE_PANEL = _pattern("pw:{tag}:state:panel", "hash", "commodity -> its cross-market state document")
STATE_SURGE = _pattern("pw:{tag}:state:surge", "hash", "commodity -> its commodity-wide surge state document")
STATE_RULES = _pattern("pw:{tag}:state:rules", "hash", "alert key -> its rule state document")
STATE_ENGINE = _pattern("pw:{tag}:state:engine", "string",
                        "the partition's own engine state document (clock, last alert id)")
STATE_SOURCES = _pattern("pw:{tag}:state:sources", "hash",
                         "device or source -> JSON [decayed ticks, decayed quarantined, state] (its reliability)")
STATE_SERIES_INFO = _pattern("pw:{tag}:state:seriesinfo", "hash",
                             "series key -> JSON [province, last price, newest ts, wall time it came] (engine)")
RULES_STATUS = _key("pw:rules:status", "string", "JSON: loaded rule files, errors (file, line, reason), loaded_at")
ENGINE_HEARTBEAT = _key("pw:engine:heartbeat", "string", "the last sweep time of any engine (readyz)", ttl=True)
ENGINE_PROGRESS = _pattern("pw:{tag}:engine:progress", "string",
                           "wall time the partition's owner last committed ticks or was caught up")
PROCESSED = _pattern("pw:{tag}:stats:processed", "string", "counter: ticks of the partition the engine committed")
ALERTS_RAISED = _pattern("pw:{tag}:stats:alerts", "string", "counter: alert events raised in the partition")
ERRORS = _pattern("pw:{tag}:stats:errors", "hash",
                  '"detector:<name>" / "rule:<name>" / "engine:<cause>" -> failures contained')
DEADLETTER = _pattern("pw:{tag}:deadletter", "stream",
                      "the partition's ticks the engine could not process at all, for an operator to replay")
DEADLETTERED = _pattern("pw:{tag}:stats:deadlettered", "string", "counter: ticks ever moved to the dead letters")
IMPORT = _pattern("pw:import:{id}", "string", "an upload's progress and report, JSON (server/imports.py)",
                  ttl=True)
IMPORT_PREFIX = IMPORT.prefix
DEMO_STATUS = _key("pw:demo:status", "string", 'the demo replay: JSON {"state", "from", "to", "updated_at"}')
HISTOGRAM = _pattern("pw:metrics:hist:{name}", "hash",
                     "a /metrics histogram: bucket upper bound -> count (not cumulative), `sum`")
HISTOGRAM_PREFIX = HISTOGRAM.prefix

# Silences and acknowledgements (stores/silences.py, server/silences.py); one hash tag: one slot
SILENCES = _key("pw:{{silences}}", "hash",
                "silence id -> JSON silence (expired ones kept for audit: PASARWATCH_SILENCE_RETENTION_DAYS)")
SILENCE_ENDS = _key("pw:{{silences}}:ends", "zset", "silence id by ends_at: the engine reads only the live ones")
ACKS = _key("pw:acks", "hash", "alert key -> JSON {by, at, comment}")

# Telegram subscriptions and mutes (workers/subscriptions.py, workers/commands.py)
SUB_TOPIC = _pattern("pw:sub:topic:{commodity}:{province}", "set", "chat ids subscribed to that topic (`*` = all)")
SUB_TOPIC_PREFIX = SUB_TOPIC.prefix
SUB_CHAT = _pattern("pw:sub:chat:{chat}", "set", "the chat's topics, as `commodity:province`")
SUB_CHATS = _key("pw:sub:chats", "set", "every chat with at least one subscription")
MUTE_CHAT = _pattern("pw:mute:chat:{chat}", "string",
                     "the chat hears nothing until it expires (value: until)", ttl=True)
MUTE_ALERT = _pattern("pw:mute:key:{chat}:{alert_key}", "string",
                      "the chat does not hear of that alert until it expires", ttl=True)
TG_UPDATE = _pattern("pw:tg:update:{update_id}", "string",
                     "marker: this Telegram update was handled (redeliveries)", ttl=True)

# Notifications (workers/notifications.py, workers/groups.py, workers/dispatch.py)
NOTIF = _pattern("pw:notif:{id}", "hash", "a notification: chat, state, reason, times, parts, progress")
NOTIF_ITEMS = _pattern("pw:notif:{id}:items", "list",
                       "the alert events (orjson) a notification is about, in arrival order")
NOTIF_INDEX = _key("pw:notif:index", "zset", "notification id by creation time, capped: what the API lists")
NOTIF_DUE = _key("pw:notif:due", "zset", "pending notification id by the time a worker must have finished it")
NOTIF_LEASE = _pattern("pw:notif:lease:{id}", "string",
                       "the worker delivering a notification, renewed while alive", ttl=True)
NOTIF_SWEEP = _key("pw:notif:sweep", "string", "lock: one process runs the stalled-notification sweep per interval",
                   ttl=True)
GROUP_STATE = _pattern("pw:notif:group:{gid}", "string", "an alert group (orjson): its key, receiver, timing and state")
GROUP_ALERTS = _pattern("pw:notif:group:{gid}:alerts", "hash", "alert key -> the group's newest event of it (orjson)")
GROUPS_DUE = _key("pw:notif:groups:due", "zset", "group id by the time of its next flush")
GROUP_MEMBER = _pattern("pw:notif:in:{alert_key}", "set", "the groups that hold the alert")
GROUP_STAGED = _pattern("pw:notif:staged:{marker}", "string",
                        "marker: this alert event was taken into its groups", ttl=True)

# Telegram rate limits (workers/ratelimit.py)
RL_GLOBAL = _key("pw:rl:global", "zset", "booked send times, all chats (Telegram's 30 a second)", ttl=True)
RL_NEXT = _pattern("pw:rl:next:{chat}", "string", "the earliest time of the chat's next send", ttl=True)
RL_GROUP = _pattern("pw:rl:group:{chat}", "zset", "booked send times of a group chat (20 a minute)", ttl=True)


def series_key(commodity: str, market: str) -> str:
    """The field of a series in a partition's latest, health and state hashes."""
    return f"{commodity}/{market}"


def partition_of(commodity: str, partitions: int) -> int:
    """The partition a commodity's ticks go to: stable across processes, versions and machines
    (CRC-32, not Python's salted hash), so every web process routes a tick to the same stream.

    >>> partition_of("beras-medium", 8), partition_of("beras-medium", 1)
    (3, 0)
    """
    return zlib.crc32(commodity.encode("utf-8")) % partitions


class Partition:
    """The key names of one partition, spelled once (the engine reads them on every batch)."""

    def __init__(self, number: int):
        self.number = number
        self.tag = tag = f"{{p{number}}}"
        self.lease = LEASE.of(tag=tag)
        self.ticks = TICKS.of(tag=tag)
        self.seq_prefix = SEQ.of(tag=tag, device="", source="").rstrip("/")
        self.audit_head = AUDIT_HEAD.of(tag=tag)
        self.audit_anchor = AUDIT_ANCHOR.of(tag=tag)
        self.accepted = ACCEPTED.of(tag=tag)
        self.alerts = ALERTS.of(tag=tag)
        self.latest = LATEST.of(tag=tag)
        self.latest_ts = LATEST_TS.of(tag=tag)
        self.firing = FIRING.of(tag=tag)
        self.health = HEALTH.of(tag=tag)
        self.sources = SOURCES.of(tag=tag)
        self.state_series = STATE_SERIES.of(tag=tag)
        self.state_panel = STATE_PANEL.of(tag=tag)
        self.state_rules = STATE_RULES.of(tag=tag)
        self.state_surge = STATE_SURGE.of(tag=tag)
        self.state_engine = STATE_ENGINE.of(tag=tag)
        self.state_sources = STATE_SOURCES.of(tag=tag)
        self.state_series_info = STATE_SERIES_INFO.of(tag=tag)
        self.progress = ENGINE_PROGRESS.of(tag=tag)
        self.processed = PROCESSED.of(tag=tag)
        self.alerts_raised = ALERTS_RAISED.of(tag=tag)
        self.errors = ERRORS.of(tag=tag)
        self.deadletter = DEADLETTER.of(tag=tag)
        self.deadlettered = DEADLETTERED.of(tag=tag)
        self._history_prefix = HISTORY.of(tag=tag, commodity="", market="").rstrip("/")

    def history(self, commodity: str, market: str) -> str:
        return f"{self._history_prefix}{commodity}/{market}"

    def __repr__(self) -> str:
        return f"Partition({self.number})"


def partitions(count: int) -> list[Partition]:
    return [Partition(number) for number in range(count)]


def shown_name(key: Key) -> str:
    """The name as the doc shows it: a pattern with its ``{fields}``, a fixed key as it is."""
    return key.name if _fields(key.name) else key.name.format()


def markdown_table() -> str:
    """docs/architecture.md's key table."""
    rows = ["| key | type | what |", "|---|---|---|"]
    for key in REGISTRY:
        kind = "pub/sub channel" if key.type == "channel" else key.type + (", TTL" if key.ttl else "")
        rows.append(f"| {shown_name(key)} | {kind} | {key.meaning} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
