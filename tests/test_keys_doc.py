"""Redis key names live in base/keys.py only, and docs/architecture.md's key table is its registry."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from base import keys
from base.config import PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "architecture.md"
PACKAGES = ("base", "stores", "server", "workers", "pipeline", "detectors", "rules")
# A whole string that is a key name (docstrings and messages that mention one have spaces).
KEY_LITERAL = re.compile(r"pw:[\w:.{}/*-]*")


def doc_table() -> dict[str, str]:
    """key -> type column of the table under "## Redis keys"."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Redis keys", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 3 and cells[0] not in ("key", "---"):
            assert cells[0] not in rows, f"{cells[0]} is in the table twice"
            rows[cells[0]] = cells[1]
    return rows


def registry_types() -> dict[str, str]:
    return {keys.shown_name(key): ("pub/sub channel" if key.type == "channel" else key.type + (", TTL" if key.ttl else ""))
            for key in keys.REGISTRY}


def test_every_registered_key_is_in_the_doc_with_its_type_and_nothing_else():
    table, registry = doc_table(), registry_types()
    assert sorted(set(registry) - set(table)) == [], "keys missing from docs/architecture.md"
    assert sorted(set(table) - set(registry)) == [], "keys in docs/architecture.md that base/keys.py does not name"
    wrong = {name: (table[name], kind) for name, kind in registry.items() if table[name] != kind}
    assert wrong == {}, "doc type vs registry type"


def test_the_doc_table_is_the_generated_one():
    text = DOC.read_text(encoding="utf-8")
    assert keys.markdown_table() in text, "regenerate the table with: python3 -m base.keys"


def key_literals(path: Path) -> list[str]:
    """String constants and f-string heads in ``path`` that spell a Redis key."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.JoinedStr) and node.values:
            head = node.values[0]
            if isinstance(head, ast.Constant) and isinstance(head.value, str) and head.value.startswith("pw:"):
                found.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}: f-string {head.value!r}...")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and KEY_LITERAL.fullmatch(node.value):
            found.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}: {node.value!r}")
    return found


def test_no_module_spells_a_key_outside_base_keys():
    spelled = []
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            if path != PROJECT_ROOT / "base" / "keys.py":
                spelled += key_literals(path)
    assert spelled == []


def test_registry_names_are_unique_and_typed():
    names = [keys.shown_name(key) for key in keys.REGISTRY]
    assert len(names) == len(set(names))
    assert {key.type for key in keys.REGISTRY} <= set(keys.TYPES)
    assert all(name.startswith("pw:") for name in names)


def test_a_pattern_builds_its_keys_and_scripts_append_to_its_prefix():
    assert keys.SUB_TOPIC.of(commodity="beras", province="*") == "pw:sub:topic:beras:*"
    assert keys.SUB_TOPIC_PREFIX + "beras:*" == "pw:sub:topic:beras:*"
    assert keys.GROUP_ALERTS.of(gid="g1") == "pw:notif:group:g1:alerts"
    partition = keys.Partition(3)
    assert partition.history("beras", "pasar-agung") == "pw:{p3}:hist:beras/pasar-agung"
    assert partition.seq_prefix + "dev-1/src" == keys.SEQ.of(tag="{p3}", device="dev-1", source="src")
    assert partition.ticks == "pw:{p3}:ticks" and keys.SILENCES == "pw:{silences}"


def test_every_key_of_a_partition_carries_its_hash_tag():
    """One tag per partition: every transaction and script of a batch stays in one cluster slot."""
    partition = keys.Partition(5)
    names = [value for value in vars(partition).values() if isinstance(value, str) and value.startswith("pw:")]
    names.append(partition.history("beras", "pasar-agung"))
    assert len(names) > 20 and all("{p5}" in name and name.count("{") == 1 for name in names)
