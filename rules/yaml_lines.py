"""YAML that remembers where each value came from, so errors can say ``file:line: reason``.

Operators edit the catalog and rule files by hand; every message about them points at a line.
``load`` is PyYAML's SafeLoader with two changes: mappings and sequences remember their line
and the line of each key or item, and a key written twice is an error (PyYAML would silently
keep the last one, while the operator meant only one of them).

>>> document = load("rules:\\n  - name: a\\n    when: stale\\n")
>>> document.line_of("rules"), document["rules"].item_lines, document["rules"][0].line_of("when")
(1, [2], 3)
>>> load("a: 1\\na: 2\\n")
Traceback (most recent call last):
...
yaml.constructor.ConstructorError: duplicate key 'a'
  in "<unicode string>", line 2, column 1:
    a: 2
    ^
"""
from __future__ import annotations

from typing import Any, Iterator

import yaml

__all__ = ["LineDict", "LineList", "load", "error_line", "error_reason"]


class LineDict(dict):
    """A YAML mapping with its own line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_lines = {}

    def line_of(self, key: Any) -> int:
        """The line of ``key``, or of the mapping itself when the key is absent."""
        return self.key_lines.get(key, self.line)


class LineList(list):
    """A YAML sequence with its own line and the line of each item (1-based)."""

    line: int = 0
    item_lines: list[int]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_lines = []

    def line_of(self, index: Any) -> int:
        if isinstance(index, int) and 0 <= index < len(self.item_lines):
            return self.item_lines[index]
        return self.line


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Iterator[LineDict]:
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1
    yield mapping  # yielded first, like PyYAML's own constructors, so recursion works
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in mapping
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value", key_node.start_mark) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> Iterator[LineList]:
    sequence = LineList()
    sequence.line = node.start_mark.line + 1
    sequence.item_lines = [item.start_mark.line + 1 for item in node.value]
    yield sequence
    sequence.extend(loader.construct_object(item, deep=True) for item in node.value)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def load(text: str) -> Any:
    """Parse one YAML document; raises ``yaml.YAMLError`` (see ``error_line``)."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except (ValueError, OverflowError, RecursionError) as exc:
        # PyYAML's own constructors fail this way on 2024-02-30 or a 5000-digit number.
        raise yaml.YAMLError(f"a value cannot be read: {exc}") from None


def error_line(exc: yaml.YAMLError) -> int | None:
    """The 1-based line a YAML error points at, if it points at one."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark else None


def error_reason(exc: yaml.YAMLError) -> str:
    """The reason of a YAML error without PyYAML's excerpt of the file."""
    if isinstance(exc, yaml.MarkedYAMLError):
        return ": ".join(str(part) for part in (exc.context, exc.problem) if part) or str(exc)
    return str(exc)
