"""The README's environment table is base/config.py's ENVIRONMENT, as environment_table() writes it."""
from __future__ import annotations

from base.config import PROJECT_ROOT, environment_table

HEADER = "| variable | default | meaning |"


def readme_table() -> str:
    lines = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index(HEADER)
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join(lines[start:end])


def test_the_readme_lists_every_environment_variable_with_its_default_and_meaning_and_no_other():
    assert readme_table() == environment_table(), (
        "README.md's environment table differs from base/config.py's ENVIRONMENT; regenerate it with "
        "python3 -c 'from base.config import environment_table; print(environment_table())'")
