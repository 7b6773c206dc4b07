"""Rule state in the checkpoint codec (base/state.py): what rules may put in a checkpoint.

Importing this module registers the alert state the engine checkpoints per rule and series
(``AlertState`` with its ``RungState`` ladder) and compiled conditions, which are saved as
their source and compiled again when read (a compiled condition is closures; compiling the
source goes through the same checks as a rule file, so a checkpoint cannot smuggle in an
expression a rule file could not hold).

>>> from base.state import decode_state, encode_state
>>> state = AlertState(rungs=[RungState(true_ticks=2, active=True)], top=0, sources=["hp-1"])
>>> decode_state(encode_state(state)) == state
True
>>> condition = decode_state(encode_state(compile_condition("zscore.score >= 4", {"zscore"})))
>>> condition.evaluate({"scores": {"zscore": 5.0}, "fired": []}, {})
True
"""
from __future__ import annotations

from base.state import StateError, register
from rules.lifecycle import AlertState, RungState
from rules.expressions import Condition, ExpressionError, compile_condition


def _condition_value(condition: Condition) -> dict:
    return {"source": condition.source, "names": sorted(condition.names)}


def _condition(value: object) -> Condition:
    if type(value) is not dict or type(value.get("source")) is not str or type(value.get("names")) is not list:
        raise StateError("a condition is saved as its source and names")
    try:
        return compile_condition(value["source"], set(value["names"]))
    except ExpressionError as exc:
        raise StateError(f"condition {value['source']!r}: {exc}") from None


# Named where they were first defined (rules/engine.py), as every checkpoint written since holds them.
register(AlertState, name="rules.engine.AlertState")
register(RungState, name="rules.engine.RungState")
register(Condition, encode=_condition_value, decode=_condition)
