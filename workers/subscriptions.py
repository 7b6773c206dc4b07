"""Who hears of which alert: subscriptions, mutes and acknowledgements, in Redis.

Writes are queued on a pipeline passed in; redis-py's sync and asyncio pipelines share their
command methods, so the bot (asyncio, in the web process) and the worker and dispatcher (sync)
use the one definition of every write here.

Its keys, ``pw:sub:*``, ``pw:mute:*`` and ``pw:acks``, are named with their types in
base/keys.py.
"""
from __future__ import annotations

from typing import Any


from base import keys

ALL = "*"
CHATS = keys.SUB_CHATS
ACKS = keys.ACKS
EVENTS = keys.EVENTS

# Remove a chat from every topic it is in: one atomic step, so a 403 (the user blocked the bot)
# can never leave the chat half subscribed.
UNSUBSCRIBE_ALL = """
local topics = redis.call('SMEMBERS', KEYS[1])
for _, topic in ipairs(topics) do
  redis.call('SREM', ARGV[2] .. topic, ARGV[1])
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return #topics
"""
TOPIC_PREFIX = keys.SUB_TOPIC_PREFIX


def topic_key(commodity: str, province: str = ALL) -> str:
    return keys.SUB_TOPIC.of(commodity=commodity, province=province)


def chat_key(chat: int | str) -> str:
    return keys.SUB_CHAT.of(chat=chat)


def chat_mute_key(chat: int | str) -> str:
    return keys.MUTE_CHAT.of(chat=chat)


def alert_mute_key(chat: int | str, alert_key: str) -> str:
    return keys.MUTE_ALERT.of(chat=chat, alert_key=alert_key)


def topics_for(commodity: str, province: str) -> list[str]:
    """The topic keys whose subscribers hear of an alert on ``commodity`` in ``province``."""
    return [topic_key(commodity, province), topic_key(commodity, ALL),
            topic_key(ALL, province), topic_key(ALL, ALL)]


def parse_topic(member: bytes | str) -> tuple[str, str]:
    """``b"cabai-rawit-merah:32"`` -> ``("cabai-rawit-merah", "32")``."""
    text = member.decode() if isinstance(member, bytes) else member
    commodity, _, province = text.partition(":")
    return commodity, province or ALL


def subscribe(pipe: Any, chat: int, commodity: str, province: str = ALL) -> None:
    pipe.sadd(topic_key(commodity, province), chat)
    pipe.sadd(chat_key(chat), f"{commodity}:{province}")
    pipe.sadd(CHATS, chat)


def unsubscribe(pipe: Any, chat: int, commodity: str, province: str = ALL) -> None:
    pipe.srem(topic_key(commodity, province), chat)
    pipe.srem(chat_key(chat), f"{commodity}:{province}")


def unsubscribe_all(client: Any, chat: int) -> Any:
    """Remove ``chat`` everywhere; returns the topic count (awaitable on an asyncio client)."""
    script = client.register_script(UNSUBSCRIBE_ALL)
    return script(keys=[chat_key(chat), CHATS], args=[chat, TOPIC_PREFIX])


def mute_chat(pipe: Any, chat: int, seconds: int, now: float) -> None:
    if seconds <= 0:
        pipe.delete(chat_mute_key(chat))
    else:
        pipe.set(chat_mute_key(chat), int(now + seconds), ex=int(seconds))


def mute_alert(pipe: Any, chat: int, alert_key: str, seconds: int, now: float) -> None:
    pipe.set(alert_mute_key(chat, alert_key), int(now + seconds), ex=int(seconds))


def muted_keys(client: Any, chat: int, alert_keys: list[str]) -> set[str]:
    """Which of ``alert_keys`` the chat has muted (all of them while the chat is muted). Sync."""
    if not alert_keys:
        return set()
    with client.pipeline(transaction=False) as pipe:
        pipe.exists(chat_mute_key(chat))
        pipe.mget([alert_mute_key(chat, key) for key in alert_keys])
        chat_muted, per_key = pipe.execute()
    if chat_muted:
        return set(alert_keys)
    return {key for key, value in zip(alert_keys, per_key) if value is not None}
