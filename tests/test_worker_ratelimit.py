"""Telegram's send limits as booked in a real Redis (workers/ratelimit.py)."""
from __future__ import annotations

import pytest

from tests.test_worker_dispatch import client  # noqa: F401 - the fixture: a client of a fresh Redis
from workers import ratelimit

NOW = 1_800_000_000.0


def test_one_chat_gets_about_one_message_a_second(client):
    slots = [ratelimit.reserve(client, 42, NOW, f"m{i}") for i in range(4)]
    assert slots == [NOW, NOW + 1, NOW + 2, NOW + 3]


def test_other_chats_are_not_held_back_by_a_busy_one(client):
    for i in range(5):
        ratelimit.reserve(client, 42, NOW, f"busy{i}")
    assert ratelimit.reserve(client, 43, NOW, "other") == NOW


def test_at_most_thirty_messages_a_second_overall(client):
    slots = [ratelimit.reserve(client, 1000 + i, NOW, f"m{i}") for i in range(61)]
    window = ratelimit.GLOBAL_WINDOW
    assert 1.0 <= window < 1.5
    assert slots[:30] == [NOW] * 30
    assert slots[30:60] == [pytest.approx(NOW + window)] * 30
    assert slots[60] == pytest.approx(NOW + 2 * window)
    # Within any one-second window there are never more than 30 bookings.
    for start in slots:
        assert sum(1 for s in slots if start <= s < start + 1) <= 30


def test_a_group_gets_at_most_twenty_a_minute(client):
    group = -1001234
    slots = [ratelimit.reserve(client, group, NOW, f"g{i}") for i in range(22)]
    window = ratelimit.GROUP_WINDOW
    assert 60 <= window < 65
    assert slots[:20] == [NOW + i for i in range(20)]
    assert slots[20] == NOW + window  # the 21st waits until the first leaves the minute window
    assert slots[21] == NOW + window + 1
    for start in slots:
        assert sum(1 for s in slots if start <= s < start + 60) <= 20


def test_hold_after_429_pushes_the_chat_back_but_never_forward(client):
    ratelimit.hold(client, 42, NOW + 30, NOW)
    ratelimit.hold(client, 42, NOW + 5, NOW)  # an earlier hold does not shorten the first
    assert ratelimit.reserve(client, 42, NOW, "after-429") == NOW + 30
    assert ratelimit.reserve(client, 7, NOW, "unaffected") == NOW
