"""Caches a detector keeps between the calls of one tick, which are not state.

The stack asks a detector several things about the same tick (the cross-market consensus, score
and premium against the same other markets; the forecast's level for the score, the expected
band and the learning). A detector that works such a value out once keeps it in an attribute
named in ``TRANSIENT``, dropped whenever the state it came from changes. Those attributes never
reach a checkpoint (base/state.py encodes ``__getstate__``), a pickle or a copy: a restored
detector starts without them and works them out again, to the same floats.

>>> class Level(Transient):
...     TRANSIENT = ("_memo",)
...     _memo = None
...     def __init__(self):
...         self.value = 1.0
>>> level = Level()
>>> level._memo = 2.0
>>> level.__getstate__()
{'value': 1.0}
"""
from __future__ import annotations


class Transient:
    TRANSIENT: tuple[str, ...] = ()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for name in self.TRANSIENT:
            state.pop(name, None)
        return state
