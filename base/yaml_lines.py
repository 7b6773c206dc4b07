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

Two bounds keep a hostile file from costing more than its size: the text is at most
``MAX_CHARS`` characters, and YAML aliases may not expand the document beyond
``MAX_EXPANDED`` (a 418-byte "billion laughs" file otherwise reads as a 312 MB value, which
every error message quoting it then copies):

>>> bomb = "a: &a [" + ",".join(["lol"] * 9) + "]\\n"
>>> for name, prev in zip("bcdefgh", "abcdefg"):
...     bomb += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\\n"
>>> load(bomb)
Traceback (most recent call last):
...
yaml.composer.ComposerError: aliases expand this document beyond 1000000 characters (a YAML alias bomb?)
  in "<unicode string>", line 6, column 4:
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
       ^
"""
from __future__ import annotations

from pathlib import Path
from collections.abc import Iterator
from typing import Any

import yaml

__all__ = ["LineDict", "LineList", "load", "read_text", "error_line", "error_reason", "FileTooLarge",
           "MAX_CHARS", "MAX_EXPANDED", "MAX_DEPTH"]

MAX_CHARS = 256 * 1024  # the shipped rule files are under 10 KB, the catalog under 40 KB
# Characters plus nodes once every alias is replaced by what it names. A file without aliases
# stays below about twice its length; aliases get the rest as room for reuse.
MAX_EXPANDED = 1_000_000
MAX_DEPTH = 64  # the deepest shipped file nests 6


class FileTooLarge(ValueError):
    pass


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
    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        # PyYAML composes recursively: 5,000 nested brackets took 3 s to end in RecursionError.
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} deep",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


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


def read_text(path: Path) -> str:
    """The text of a file of at most ``MAX_CHARS`` bytes; raises FileTooLarge, OSError or
    UnicodeDecodeError. Reads no more than the bound, whatever the file's size."""
    with open(path, "rb") as handle:
        raw = handle.read(MAX_CHARS + 1)
    if len(raw) > MAX_CHARS:
        raise FileTooLarge(f"the file is larger than {MAX_CHARS // 1024} KiB, the limit for a rule or catalog file")
    return raw.decode("utf-8")


def load(text: str) -> Any:
    """Parse one YAML document; raises ``yaml.YAMLError`` (see ``error_line``)."""
    if len(text) > MAX_CHARS:
        raise yaml.YAMLError(f"the text is longer than {MAX_CHARS} characters")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    except (ValueError, OverflowError, RecursionError) as exc:
        # PyYAML's own constructors fail this way on 2024-02-30 or a 5000-digit number.
        raise yaml.YAMLError(f"a value cannot be read: {exc}") from None
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose expanded size passes MAX_EXPANDED, or an alias inside its own
    anchor. Each distinct node is sized once (aliases share nodes), so this is linear in the
    text, and iterative, so deep nesting cannot exhaust the stack."""
    sizes: dict[int, int] = {}
    opened: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        children = _children(node)
        if finished:
            size = 1 + (len(node.value) if isinstance(node, yaml.ScalarNode) else 0)
            size += sum(sizes[id(child)] for child in children)
            if size > MAX_EXPANDED:
                raise yaml.composer.ComposerError(
                    None, None, f"aliases expand this document beyond {MAX_EXPANDED} characters (a YAML alias bomb?)",
                    node.start_mark)
            sizes[key] = size
            opened.discard(key)
        elif key in opened:
            raise yaml.composer.ComposerError(None, None, "an alias refers to a node that contains it", node.start_mark)
        elif key not in sizes:
            opened.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def error_line(exc: yaml.YAMLError) -> int | None:
    """The 1-based line a YAML error points at, if it points at one."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark else None


def error_reason(exc: yaml.YAMLError) -> str:
    """The reason of a YAML error without PyYAML's excerpt of the file."""
    if isinstance(exc, yaml.MarkedYAMLError):
        return ": ".join(str(part) for part in (exc.context, exc.problem) if part) or str(exc)
    return str(exc)
