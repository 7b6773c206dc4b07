"""The baseline's own environment: bench/.venv-baseline with broadcaster and what it works with.

broadcaster 0.3.1 receives nothing from Redis with redis-py 8.0 or later, silently: published
into a subscribed ``Broadcast``, messages arrive with redis-py 5.2, 6.4, 7.0 and 7.4.1 and
never with 8.0.0 or 8.1.0. 7.4.1 is the newest that works.
The pins live here, not in the product's pyproject. The web stack is pinned to the versions
Pasarwatch runs with, so the comparison is of the fan-out design, not of library versions.
"""
from __future__ import annotations

import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
VENV = BENCH_DIR / ".venv-baseline"
APP_DIR = BENCH_DIR  # baseline_app.py lives here and imports nothing of Pasarwatch
BASELINE_PINS = ["broadcaster==0.3.1", "redis==7.4.1", "anyio>=4,<5"]


# The web stack of ours, installed into the baseline at the same versions. uvloop and httptools
# are what ``uvicorn[standard]`` (the install uvicorn's README gives) adds; they are included
# when ours has them, so both servers run on the same event loop and HTTP parser.
SAME_AS_OURS = ("starlette", "uvicorn", "websockets", "uvloop", "httptools")


def requirements() -> list[str]:
    same_as_ours = []
    for name in SAME_AS_OURS:
        try:
            same_as_ours.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return BASELINE_PINS + same_as_ours


def python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> Path:
    """Create or update the baseline's venv; returns its python. Reused while the pins match."""
    wanted = "\n".join(requirements()) + "\n"
    marker = VENV / "bench-requirements.txt"
    if python().exists() and marker.exists() and marker.read_text() == wanted:
        return python()
    if not python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    result = subprocess.run([str(python()), "-m", "pip", "install", "--quiet", *requirements()],
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"cannot install the baseline's packages:\n{result.stderr[-2000:]}")
    marker.write_text(wanted)
    return python()


def server_args(port: int) -> list[str]:
    """uvicorn as its README runs it; per-message deflate is moot (the clients do not offer it)."""
    return [str(python()), "-m", "uvicorn", "baseline_app:app", "--app-dir", str(APP_DIR),
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
