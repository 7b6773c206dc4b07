"""Imports point down: catalog and configuration at the bottom, detectors and rules above them,
the pipeline (the one step and the offline tools) above those, server and workers on top.

A module may import its own package, anything in a lower layer, and the bottom modules from
anywhere. The exceptions that remain are listed with why; a new upward import fails here.
"""
from __future__ import annotations

import ast
from pathlib import Path

from server.config import PROJECT_ROOT

LAYERS = {"detectors": 1, "rules": 1, "pipeline": 2, "server": 3, "workers": 3, "bench": 4}
# The domain's ground floor: the catalog (with its name index and YAML reader), configuration
# and Redis key names, imported from every layer.
BOTTOM = {"rules.catalog", "rules.names", "rules.yaml_lines", "server.config", "server.keys"}
# Known and left for now (see the closing note of the layering issue): the benchmarks reuse the
# tests' process harness and fake Bot API.
KNOWN = {("bench", "tests")}


def imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def upward_imports() -> list[str]:
    found = []
    for package, layer in LAYERS.items():
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
            for name in imports(path):
                top = name.split(".")[0]
                if top == package or name in BOTTOM or (package, top) in KNOWN:
                    continue
                if top == "tests" or (top in LAYERS and LAYERS[top] > layer):
                    if not any(name.startswith(bottom + ".") for bottom in BOTTOM):
                        found.append(f"{module} imports {name}")
    return sorted(set(found))


def test_imports_point_down():
    assert upward_imports() == []


def test_detectors_know_nothing_of_redis_http_or_telegram():
    for path in (PROJECT_ROOT / "detectors").rglob("*.py"):
        outside = [n for n in imports(path) if n.split(".")[0] in ("redis", "starlette", "telegram", "rq", "httpx")]
        assert outside == [], f"{path.name} imports {outside}"
