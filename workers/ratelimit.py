"""Telegram's sending limits, shared by every worker through Redis.

Telegram allows a bot about 30 messages a second overall, about one a second to one chat and
20 a minute to one group (a negative chat id). ``reserve`` books the earliest send time that
keeps within all three and returns it; the caller waits for a short wait, or reschedules its
job for a long one, so that one busy chat never blocks the worker for the others. A 429 from
Telegram holds the chat back for its ``retry_after`` with ``hold``.
"""
from __future__ import annotations

from typing import Any

from base import keys

GLOBAL_PER_SECOND = 30
CHAT_GAP = 1.0  # seconds between two messages to one chat
GROUP_PER_MINUTE = 20
# The windows are a little longer than Telegram's, so that a send that leaves a little after
# its booked time (a busy CPU, a slow fork) does not make the sends Telegram counts too many.
GLOBAL_WINDOW = 1.1
GROUP_WINDOW = 61.0

GLOBAL_KEY = keys.RL_GLOBAL

# Times are integer milliseconds. Booked times go into sliding-window sets; for each window
# the new time moves past the oldest booking that would make the window too full, until it
# fits all of them (moving later never fills a window, so this settles in a step or two).
RESERVE = """
local now = tonumber(ARGV[1])
local gap, glimit, gwin = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local plimit, pwin = tonumber(ARGV[5]), tonumber(ARGV[6])
local member, is_group = ARGV[7], ARGV[8] == '1'
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - gwin)
if is_group then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - pwin) end
local t = now
local hold = tonumber(redis.call('GET', KEYS[2]) or '0')
if hold > t then t = hold end
local function fit(key, limit, win)
  local n = redis.call('ZCOUNT', key, '(' .. (t - win), '+inf')
  if n < limit then return false end
  local oldest = redis.call('ZRANGEBYSCORE', key, '(' .. (t - win), '+inf', 'WITHSCORES', 'LIMIT', n - limit, 1)
  t = tonumber(oldest[2]) + win
  return true
end
for _ = 1, 20 do
  local moved = fit(KEYS[1], glimit, gwin)
  if is_group and fit(KEYS[3], plimit, pwin) then moved = true end
  if not moved then break end
end
redis.call('ZADD', KEYS[1], t, member)
redis.call('PEXPIRE', KEYS[1], (t - now) + gwin + 1000)
if is_group then
  redis.call('ZADD', KEYS[3], t, member)
  redis.call('PEXPIRE', KEYS[3], (t - now) + pwin + 1000)
end
redis.call('SET', KEYS[2], t + gap, 'PX', (t - now) + gap + 1000)
return t
"""
HOLD = """
local hold_till = tonumber(ARGV[1])
if hold_till > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], hold_till, 'PX', math.max(1, hold_till - tonumber(ARGV[2])) + 1000)
end
return 1
"""


def chat_key(chat: int) -> str:
    return keys.RL_NEXT.of(chat=chat)


def group_key(chat: int) -> str:
    return keys.RL_GROUP.of(chat=chat)


def reserve(client: Any, chat: int, now: float, member: str) -> float:
    """Book a send to ``chat``; returns the booked time (epoch seconds, ``>= now``).

    ``member`` names the booking (unique per message), so two bookings never collapse.
    """
    booked = client.register_script(RESERVE)(
        keys=[GLOBAL_KEY, chat_key(chat), group_key(chat)],
        args=[int(now * 1000), int(CHAT_GAP * 1000), GLOBAL_PER_SECOND, int(GLOBAL_WINDOW * 1000),
              GROUP_PER_MINUTE, int(GROUP_WINDOW * 1000), member, "1" if chat < 0 else "0"])
    return int(booked) / 1000.0


def hold(client: Any, chat: int, until: float, now: float) -> None:
    """No send to ``chat`` before ``until`` (after Telegram answered 429 with retry_after)."""
    client.register_script(HOLD)(keys=[chat_key(chat)], args=[int(until * 1000), int(now * 1000)])
