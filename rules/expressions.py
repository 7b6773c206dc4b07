"""Conditions in rule files: a small, safe expression language compiled once per reload.

An operator writes Python-like conditions over detector outputs::

    zscore.fired and crossmarket.score >= 4
    quarantined or ceiling.score > 1.05
    abs(change) >= 0.3 and not stale

Only names, attribute access on detectors, numbers, booleans, comparisons, ``and``/``or``/
``not``, arithmetic and ``abs``/``min``/``max`` are allowed; anything else (calls, subscripts,
lambdas, dunder access) is rejected at load time with the reason.

>>> condition = compile_condition("zscore.fired and crossmarket.score >= 4", {"zscore", "crossmarket"})
>>> condition.evaluate({"scores": {"zscore": 6.0, "crossmarket": 5.0}, "fired": ["zscore"]}, {})
True
>>> condition.evaluate({"scores": {"zscore": 6.0, "crossmarket": 2.0}, "fired": ["zscore"]}, {})
False
>>> odds = compile_condition("forecast.p_rise_10 >= 0.4", {"forecast"})
>>> odds.evaluate({"scores": {}, "fired": [], "odds": {"p_rise_10": 0.45}}, {}), odds.evaluate({"scores": {}}, {})
(True, False)
>>> compile_condition("__import__('os')", set())
Traceback (most recent call last):
...
rules.expressions.ExpressionError: calls other than abs, min, max are not allowed
>>> compile_condition("zscor.score > 3", {"zscore", "iqr"})
Traceback (most recent call last):
...
rules.expressions.ExpressionError: unknown detector 'zscor'; did you mean 'zscore'?
"""
from __future__ import annotations

import ast
import operator
from dataclasses import dataclass
from difflib import get_close_matches
from collections.abc import Callable
from typing import Any

# Values a condition can name besides detectors; each is read from the tick context.
CONTEXT_NAMES = {
    "price": "the tick's price",
    "quarantined": "whether the stack quarantined the tick",
    "fired_count": "how many detectors fired",
    "change": "price relative to the usual level, e.g. 0.3 = 30% above",
    "expected_level": "the series' usual level (0 until the detectors are warm)",
    "expected_lo": "lower bound of the series' expected interval (0 until warm)",
    "expected_hi": "upper bound of the series' expected interval (0 until warm)",
    "stale": "the series' feed is stale (feed-health rules)",
    "no_data": "the series has never reported (feed-health rules)",
    "detector_error": "a detector failed on the series (feed-health rules)",
    "age": "seconds since the series' last tick (feed-health rules)",
}
DETECTOR_FIELDS = {"score", "fired"}
# Fields of the forecast besides score and fired: the verdict's ``odds`` (detectors/
# forecast_horizons.py), probabilities in [0, 1], 0 until the series' forecaster is warm.
ODDS_FIELDS = {
    "p_above_reference": "probability the price passes its HAP/HET within 14 ticks",
    "p_rise_10": "probability the price rises 10% or more within 14 ticks",
}
_ODDS = "__odds"
FUNCTIONS: dict[str, Callable[..., Any]] = {"abs": abs, "min": min, "max": max}
MAX_SOURCE = 2000
MAX_DEPTH = 64

_COMPARE = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge, ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


class ExpressionError(ValueError):
    pass


@dataclass(frozen=True)
class DetectorValue:
    score: float
    fired: bool

    def __bool__(self) -> bool:
        return self.fired


Evaluator = Callable[[dict], Any]


class TickScope(dict):
    """What conditions read on one tick: the context's names, the forecast's odds, and each
    detector's value, made when a condition first reads it. Every rule evaluated on the tick
    shares one scope, so a tick costs one copy of its context, not one per condition.

    >>> scope = TickScope({"scores": {"zscore": 5.0}, "fired": ["zscore"]}, {"price": 1.0})
    >>> scope["zscore"], scope["iqr"]
    (DetectorValue(score=5.0, fired=True), DetectorValue(score=0.0, fired=False))
    """

    __slots__ = ("_scores", "_fired")

    def __init__(self, verdict: dict, context: dict) -> None:
        super().__init__(context)
        self._scores = verdict.get("scores") or {}
        self._fired = verdict.get("fired") or ()
        self[_ODDS] = verdict.get("odds") or {}

    def __missing__(self, name: str) -> DetectorValue:
        value = self[name] = DetectorValue(float(self._scores.get(name) or 0.0), name in self._fired)
        return value


@dataclass(frozen=True)
class Condition:
    source: str
    names: frozenset[str]
    _evaluate: Evaluator

    def evaluate(self, verdict: dict, context: dict) -> bool:
        """True when the condition holds for this verdict; missing scores count as 0."""
        return self.holds(TickScope(verdict, context))

    def number(self, verdict: dict, context: dict) -> float:
        """The expression's value as a number (a detector counts as its score, true as 1).

        >>> compile_value("crossmarket.score * 2", {"crossmarket"}).number({"scores": {"crossmarket": 3.5}}, {})
        7.0
        """
        return self.number_in(TickScope(verdict, context))

    def holds(self, scope: TickScope) -> bool:
        """``evaluate`` on a scope made once for every condition read on the same tick."""
        try:
            return bool(self._evaluate(scope))
        except (ArithmeticError, TypeError, ValueError):
            return False

    def number_in(self, scope: TickScope) -> float:
        """``number`` on a scope made once for every condition read on the same tick."""
        try:
            return float(_number(self._evaluate(scope)))
        except (ArithmeticError, TypeError, ValueError):
            return 0.0

    def __reduce__(self):
        # Compiled closures do not pickle; a condition is rebuilt from its source.
        return (_recompile, (self.source, tuple(self.names)))


def _recompile(source: str, names: tuple[str, ...]) -> Condition:
    return compile_condition(source, set(names))


def compile_condition(source: str, detectors: set[str]) -> Condition:
    """Compile ``source``; names must be detectors or context names (see CONTEXT_NAMES)."""
    if len(source) > MAX_SOURCE:
        raise ExpressionError(f"a condition is at most {MAX_SOURCE} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"cannot parse condition: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"nested more than {MAX_DEPTH} deep") from None
    if _depth(tree.body) > MAX_DEPTH:
        raise ExpressionError(f"nested more than {MAX_DEPTH} deep")
    used: set[str] = set()
    evaluate = _compile(tree.body, detectors, used)
    return Condition(source, frozenset(used - set(CONTEXT_NAMES)), evaluate)


def _depth(root: ast.AST) -> int:
    """Nesting depth, counted without recursion (evaluation recurses once per level)."""
    deepest, stack = 0, [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_DEPTH:
            stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def compile_value(source: str, detectors: set[str]) -> Condition:
    """Compile a numeric expression (a ladder's ``value``); same language as conditions."""
    return compile_condition(source, detectors)


def _compile(node: ast.AST, detectors: set[str], used: set[str]) -> Evaluator:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool)):
        value = node.value
        return lambda scope: value
    if isinstance(node, ast.Name):
        name = node.id
        if name in ("true", "false"):
            constant = name == "true"
            return lambda scope: constant
        if name not in detectors and name not in CONTEXT_NAMES:
            known = sorted(detectors | set(CONTEXT_NAMES))
            raise ExpressionError(f"unknown name {name!r}{_did_you_mean(name, known)}; known: {', '.join(known)}")
        used.add(name)
        if name in CONTEXT_NAMES:  # a context name wins over a detector of the same name
            return lambda scope: scope.get(name, 0)
        return lambda scope: scope[name]
    if isinstance(node, ast.Attribute):
        if not isinstance(node.value, ast.Name) or node.value.id in CONTEXT_NAMES:
            raise ExpressionError("only detector fields can be read with '.', e.g. zscore.score")
        if node.value.id not in detectors:
            name = node.value.id
            hint = _did_you_mean(name, sorted(detectors))
            raise ExpressionError(f"unknown detector {name!r}{hint or '; detectors: ' + ', '.join(sorted(detectors))}")
        detector, attr = node.value.id, node.attr
        if detector == "forecast" and attr in ODDS_FIELDS:
            used.add(detector)  # a condition is rebuilt from its source and names (__reduce__)
            return lambda scope: float(scope[_ODDS].get(attr) or 0.0)
        if attr not in DETECTOR_FIELDS:
            extra = f" (forecast also has .{', .'.join(ODDS_FIELDS)})" if detector == "forecast" else ""
            raise ExpressionError(f"detectors have .score and .fired, not .{attr}{extra}")
        used.add(detector)
        return lambda scope: getattr(scope[detector], attr)
    if isinstance(node, ast.BoolOp):
        parts = [_compile(value, detectors, used) for value in node.values]
        if isinstance(node.op, ast.And):
            return lambda scope: all(part(scope) for part in parts)
        return lambda scope: any(part(scope) for part in parts)
    if isinstance(node, ast.UnaryOp):
        operand = _compile(node.operand, detectors, used)
        if isinstance(node.op, ast.Not):
            return lambda scope: not operand(scope)
        if isinstance(node.op, ast.USub):
            return lambda scope: -_number(operand(scope))
        raise ExpressionError("unsupported unary operator")
    if isinstance(node, ast.Compare):
        left = _compile(node.left, detectors, used)
        steps = []
        for op, comparator in zip(node.ops, node.comparators):
            if type(op) not in _COMPARE:
                raise ExpressionError("comparisons are <, <=, >, >=, ==, !=")
            steps.append((_COMPARE[type(op)], _compile(comparator, detectors, used)))

        def compare(scope: dict) -> bool:
            current = _number(left(scope))
            for op_function, right in steps:
                value = _number(right(scope))
                if not op_function(current, value):
                    return False
                current = value
            return True

        return compare
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise ExpressionError("arithmetic is +, -, *, /")
        op_function = _BINARY[type(node.op)]
        left, right = _compile(node.left, detectors, used), _compile(node.right, detectors, used)
        return lambda scope: op_function(_number(left(scope)), _number(right(scope)))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
            raise ExpressionError("calls other than abs, min, max are not allowed")
        function = FUNCTIONS[node.func.id]
        args = [_compile(arg, detectors, used) for arg in node.args]
        if not args:
            raise ExpressionError(f"{node.func.id}() needs an argument")
        return lambda scope: function(*(_number(arg(scope)) for arg in args))
    raise ExpressionError(f"{type(node).__name__} is not allowed in a condition")


def _did_you_mean(name: str, known: list[str]) -> str:
    hint = get_close_matches(name, known, n=1)
    return f"; did you mean {hint[0]!r}?" if hint else ""


def _number(value: Any) -> float:
    if isinstance(value, DetectorValue):
        return value.score
    return value
