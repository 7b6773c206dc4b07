"""Per-source reliability: a device whose ticks are often quarantined is flagged to operators.

A forged or careless source shows itself as a stream of prices the other markets contradict.
Each source keeps a decaying count of its ticks and of its quarantined ticks; it is *suspect*
once enough of its recent ticks were quarantined, and *ok* again once it falls well below
(hysteresis, so a source does not flap at the line).

>>> sources = SourceReliability(min_ticks=5, suspect_at=0.3, clear_at=0.1)
>>> changes = [sources.learn_one("hp-9", quarantined=(i % 2 == 0)) for i in range(8)]
>>> [c for c in changes if c]
[{'source': 'hp-9', 'state': 'suspect', 'quarantine_rate': 0.6, 'ticks': 4.8}]
>>> changes = [sources.learn_one("hp-9", quarantined=False) for i in range(40)]
>>> [c["state"] for c in changes if c], sources.state("hp-9")
(['ok'], 'ok')
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SourceRecord:
    ticks: float = 0.0
    quarantined: float = 0.0
    state: str = "ok"


@dataclass
class SourceReliability:
    min_ticks: int = 20        # judge a source only after this many (decayed) ticks
    suspect_at: float = 0.2    # share of recent ticks quarantined that makes a source suspect
    clear_at: float = 0.05     # ...and the share below which it is ok again
    decay: float = 0.98        # per tick: about the last 50 ticks count
    sources: dict[str, SourceRecord] = field(default_factory=dict)

    def learn_one(self, source: str, quarantined: bool) -> dict | None:
        """Count one tick; returns the source's new standing when its state changes."""
        record = self.sources.setdefault(source, SourceRecord())
        record.ticks = record.ticks * self.decay + 1.0
        record.quarantined = record.quarantined * self.decay + (1.0 if quarantined else 0.0)
        if record.ticks < self.min_ticks * self.decay ** self.min_ticks:
            return None
        rate = record.quarantined / record.ticks
        new_state = record.state
        if record.state == "ok" and rate >= self.suspect_at:
            new_state = "suspect"
        elif record.state == "suspect" and rate <= self.clear_at:
            new_state = "ok"
        if new_state == record.state:
            return None
        record.state = new_state
        return {"source": source, "state": new_state, "quarantine_rate": round(rate, 2),
                "ticks": round(record.ticks, 1)}

    def state(self, source: str) -> str:
        record = self.sources.get(source)
        return record.state if record else "ok"
