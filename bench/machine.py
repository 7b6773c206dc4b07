"""The machine a benchmark ran on: CPU, cores, memory, Python and the libraries that matter."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bench import procs
from server.redis_process import redis_server_binary

LIBRARIES = ("starlette", "uvicorn", "websockets", "redis", "orjson", "httpx", "uvloop", "httptools")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _library(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _redis_version() -> str:
    try:
        out = subprocess.run([redis_server_binary(), "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip()
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"


def describe() -> dict:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "redis_server": _redis_version(),
        "libraries": {name: _library(name) for name in LIBRARIES},
        "web_cpus": sorted(procs.WEB_CPUS),
        "other_cpus": sorted(procs.LOAD_CPUS),
        "pinned": procs.PINNED,
    }


def summary(machine: dict) -> str:
    """One line for the table's heading."""
    pinning = (f"web server pinned to CPU {machine['web_cpus']}, everything else on {machine['other_cpus']}"
               if machine["pinned"] else "not pinned (one core)")
    return (f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB; "
            f"Python {machine['python']}; {machine['redis_server'].split(' sha=')[0]}; {pinning}; "
            f"niceness {machine.get('niceness', 0)}")
