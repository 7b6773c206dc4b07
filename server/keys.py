"""Names of every Redis key and channel the system uses (see docs/architecture.md)."""

TICKS = "pw:ticks"
AUDIT_HEAD = "pw:audit:head"  # chain hash of the newest accepted tick
AUDIT_ANCHOR = "pw:audit:anchor"  # chain hash of the last tick trimmed away by retention
ENGINE_GROUP = "engine"
ENGINE_CONSUMER = "engine-1"
SEQ_PREFIX = "pw:seq:"
ALERTS = "pw:alerts"
EVENTS = "pw:events"
LATEST = "pw:latest"
LATEST_TS = "pw:latest:ts"  # hash: series -> ts of its newest committed tick (what the 202 calls late against)
FIRING = "pw:firing"
HISTORY_PREFIX = "pw:hist:"
STATE_SERIES = "pw:state:series"
STATE_PANEL = "pw:state:panel"
STATE_RULES = "pw:state:rules"
STATE_ENGINE = "pw:state:engine"
STATE_SERIES_INFO = "pw:state:seriesinfo"  # hash: series -> JSON [province, last price, newest ts, wall time it came]
RULES_STATUS = "pw:rules:status"
HEALTH = "pw:health"
SOURCES = "pw:sources"  # source -> its reliability standing (when it last changed)
ENGINE_HEARTBEAT = "pw:engine:heartbeat"
ACCEPTED = "pw:stats:accepted"  # ticks acknowledged with 202
PROCESSED = "pw:stats:processed"  # ticks the engine has committed
ALERTS_RAISED = "pw:stats:alerts"
DEADLETTER = "pw:deadletter"  # ticks the engine could not process at all, for an operator to replay
DEADLETTERED = "pw:stats:deadlettered"  # ticks ever moved to the dead-letter stream
ERRORS = "pw:stats:errors"  # hash "detector:<name>" / "rule:<name>" -> failures contained
IMPORT_PREFIX = "pw:import:"  # + import id: an upload's progress and report (server/imports.py)
ENGINE_PROGRESS = "pw:engine:progress"  # wall time the engine last committed ticks or was caught up
DEMO_STATUS = "pw:demo:status"  # the demo replay: {"state": running|finished|failed, "from", "to", "updated_at"}


def series_key(commodity: str, market: str) -> str:
    return f"{commodity}/{market}"


def history_key(commodity: str, market: str) -> str:
    return f"{HISTORY_PREFIX}{commodity}/{market}"
