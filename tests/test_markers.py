"""The fast layer is found from the tests' code (tests/markers.py): check what it calls slow."""
from __future__ import annotations

import pytest

from tests import marker_samples as samples
from tests.markers import starts_processes


@pytest.mark.parametrize("name", ["pure", "waits_only"])
def test_code_that_starts_nothing_is_fast(name):
    assert not starts_processes(getattr(samples, name))


@pytest.mark.parametrize("name", ["spawns", "calls_a_helper_that_spawns", "spawns_in_a_lambda", "starts_the_system",
                                  "starts_the_system_through_its_module", "starts_redis", "uses_a_class_that_spawns"])
def test_code_that_reaches_a_process_is_system(name):
    assert starts_processes(getattr(samples, name))


def test_the_system_fixtures_tests_share_are_system(request):
    from tests import conftest

    assert starts_processes(conftest.system)
    assert "system" not in {mark.name for mark in request.node.iter_markers()}
