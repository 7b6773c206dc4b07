"""Imports point down, never up and never sideways.

From the bottom: base/ (catalog, configuration, Redis key names, the state codec); detectors/
and rules/ (pure detection and the rule language); pipeline/ (the one step and the offline
tools) and stores/ (Redis records every process shares); workers/ (notifications, the bot,
RQ); server/ (web, engine, the command line: it runs the workers' dispatcher and mounts the
bot's webhook); bench/ and testkit/ on top. A module may import its own package and any lower
layer; a package of the same layer is sideways and fails here, as does any import of tests/.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

from base.config import PROJECT_ROOT

LAYERS = {"base": 0, "detectors": 1, "rules": 1, "pipeline": 2, "stores": 2, "workers": 3, "server": 4,
          "testkit": 5, "bench": 6}


def imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def misdirected_imports() -> list[str]:
    found = []
    for package, layer in LAYERS.items():
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            if ".venv" in path.parts:  # bench/'s baseline environment is not ours
                continue
            module = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
            for name in imports(path):
                top = name.split(".")[0]
                if top == package:
                    continue
                if top == "tests" or (top in LAYERS and LAYERS[top] >= layer):
                    found.append(f"{module} imports {name}")
    return sorted(set(found))


def test_imports_point_down_never_up_or_sideways():
    assert misdirected_imports() == []


def test_the_check_sees_an_upward_and_a_sideways_import(tmp_path, monkeypatch):
    for package in LAYERS:
        (tmp_path / package).mkdir()
    (tmp_path / "rules" / "up.py").write_text("from server.engine import Engine\n")
    (tmp_path / "rules" / "side.py").write_text("import detectors.stack\n")
    (tmp_path / "server" / "down.py").write_text("from workers import dispatch\nfrom base import keys\n")
    monkeypatch.setattr(sys.modules[__name__], "PROJECT_ROOT", tmp_path)
    assert misdirected_imports() == ["rules.side imports detectors.stack", "rules.up imports server.engine"]


def test_detectors_know_nothing_of_redis_http_or_telegram():
    for path in (PROJECT_ROOT / "detectors").rglob("*.py"):
        outside = [n for n in imports(path) if n.split(".")[0] in ("redis", "starlette", "telegram", "rq", "httpx")]
        assert outside == [], f"{path.name} imports {outside}"
