"""Functions tests/test_markers.py classifies; none of them is ever called."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests import system as harness
from tests.redis_server import start_redis
from tests.system import System, wait_for


def pure(values: list[float]) -> float:
    return sum(values) / len(values)


def waits_only() -> object:
    return wait_for(lambda: True, 1.0)


def spawns() -> None:
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def calls_a_helper_that_spawns() -> None:
    spawns()


def spawns_in_a_lambda() -> object:
    return (lambda: spawns())()


def starts_the_system(tmp: Path) -> None:
    System(tmp).start()


def starts_the_system_through_its_module(tmp: Path) -> None:
    harness.System(tmp).start()


def starts_redis(tmp: Path) -> None:
    start_redis(tmp)


class Harness:
    def start(self) -> None:
        spawns()


def uses_a_class_that_spawns() -> None:
    Harness().start()
