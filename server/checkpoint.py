"""The engine's checkpoint codec: base/state.py with the rule and server classes registered.

server/engine.py imports ``encode_state``/``decode_state``/``StateError``/``register`` from
here, so every class its checkpoints hold is registered before the first one is read: detector
state (registered in detectors/state.py), rule state (rules/checkpoint.py) and the engine's
own bookkeeping (per-source reliability here; ``Clock`` is registered where it is defined).
"""
from __future__ import annotations

import rules.checkpoint  # noqa: F401 - registers AlertState, RungState and Condition
import detectors.state  # noqa: F401 - registers the detector classes
from base.state import StateError, decode_state, encode_state, register
from server.reliability import SourceRecord, SourceReliability

__all__ = ["StateError", "decode_state", "encode_state", "register"]

register(SourceReliability)
register(SourceRecord)
