"""Problems found in rule files, each as ``file:line: reason``, collected rather than raised
one at a time, so an operator sees every mistake of a file in one go.

A reason is cut at ``MAX_REASON`` characters: reasons quote what the file says, and whatever
a file says, its errors are stored in Redis, logged and shown on a page.

>>> long_name = RuleError("r.yaml", 3, "receiver " + "x" * 1000 + " is not defined")
>>> str(long_name)[:30], len(RuleError("r.yaml", 3, "y" * 9000).reason)
('r.yaml:3: receiver xxxxxxxxxxx', 487)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_REASON = 500

@dataclass(frozen=True)
class RuleError:
    file: str
    line: int
    reason: str

    def __post_init__(self) -> None:
        if len(self.reason) > MAX_REASON:
            kept = MAX_REASON - 40  # room for the note below
            note = f" ... ({len(self.reason) - kept} more characters)"
            object.__setattr__(self, "reason", self.reason[:kept] + note)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class RuleSetError(ValueError):
    def __init__(self, errors: list[RuleError]):
        super().__init__("\n".join(str(error) for error in errors))
        self.errors = errors


class Problems:
    """Collects the errors of one file; ``node`` is a mapping or list from ``base.yaml_lines``."""

    def __init__(self, file: str, errors: list[RuleError] | None = None):
        self.file = file
        self.errors: list[RuleError] = [] if errors is None else errors

    def add(self, node: Any, key: Any, reason: str) -> None:
        line_of = getattr(node, "line_of", None)
        line = line_of(key) if line_of is not None and key is not None else getattr(node, "line", 0)
        self.errors.append(RuleError(self.file, line or 0, reason))

    def at(self, line: int, reason: str) -> None:
        self.errors.append(RuleError(self.file, line, reason))

    def __len__(self) -> int:
        return len(self.errors)
