"""Which tests start real processes, found from their code, so the fast layer needs no bookkeeping.

``system``: the test, one of its fixtures, or a function or class of tests/ they name (such as
``tests.system.System``), reaches a Redis server (``server.redis_process``), the launcher or the
``subprocess`` / ``multiprocessing`` modules. ``browser``: it uses the ``chromium`` fixture.
A test can also say so itself with ``@pytest.mark.system`` or a module's ``pytestmark``.
"""
from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterable
from typing import Any

# Anything defined in these modules (or the modules themselves) starts processes.
PROCESS_MODULES = frozenset({"subprocess", "multiprocessing", "server.redis_process", "server.launcher"})
BROWSER_FIXTURES = frozenset({"chromium"})


def _module_of(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    return getattr(obj, "__module__", None) or ""


def _starts(obj: Any) -> bool:
    module = _module_of(obj)
    return any(module == name or module.startswith(name + ".") for name in PROCESS_MODULES)


def _codes(code: types.CodeType) -> Iterable[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _functions_of(obj: Any) -> list[Callable]:
    """The Python functions behind a function, method, fixture or class of the tests."""
    if inspect.isclass(obj):
        return [f for value in vars(obj).values() for f in _functions_of(value)]
    if isinstance(obj, (staticmethod, classmethod, property)):
        return _functions_of(getattr(obj, "__func__", None) or getattr(obj, "fget", None))
    obj = inspect.unwrap(getattr(obj, "__wrapped__", obj)) if callable(obj) else obj
    return [obj] if inspect.isfunction(obj) else []


def starts_processes(func: Callable, seen: set[int] | None = None) -> bool:
    """True if ``func``, or a function or class of the tests it names, reaches a process starter."""
    seen = set() if seen is None else seen
    for function in _functions_of(func):
        if id(function) in seen:
            continue
        seen.add(id(function))
        for code in _codes(function.__code__):
            for name in code.co_names:
                target = function.__globals__.get(name)
                if target is None:
                    continue
                if _starts(target):
                    return True
                if not _module_of(target).startswith("tests"):
                    continue
                # A module of the tests (``from tests import system``): what the code takes from it.
                named = ([getattr(target, attr, None) for attr in code.co_names]
                         if isinstance(target, types.ModuleType) else [target])
                if any(_starts(obj) or starts_processes(obj, seen) for obj in named if obj is not None):
                    return True
    return False


def fixture_functions(item: Any) -> list[Callable]:
    """The functions of every fixture ``item`` uses, directly or through other fixtures."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    return [definition.func for definitions in info.name2fixturedefs.values() for definition in definitions
            if _module_of(definition.func).startswith("tests")]


def kinds(item: Any) -> set[str]:
    """The markers ``item`` gets: a subset of {"system", "browser"}."""
    found = set()
    names = set(getattr(item, "fixturenames", ()))
    if names & BROWSER_FIXTURES:
        found.add("browser")
    function = getattr(item, "function", None)
    if function is not None and any(starts_processes(f) for f in [function, *fixture_functions(item)]):
        found.add("system")
    return found
