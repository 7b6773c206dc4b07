"""The shape of a Telegram update, checked before the bot acts on one.

Telegram sends well-formed updates; anything else reaching the webhook (with its secret) is a
bug or an attack, and must be refused whole with the part that is wrong named, not fail half
way with a 500. Only the parts the bot reads are checked. Pure: no I/O.
"""
from __future__ import annotations

from typing import Any


class BadUpdate(ValueError):
    """An update that is not the shape Telegram sends; ``field`` names the part that is wrong."""

    def __init__(self, field_name: str, detail: str):
        super().__init__(detail)
        self.field = field_name
        self.detail = detail


def check_update(update: dict) -> None:
    """Raise BadUpdate unless the parts of ``update`` the bot reads have the types Telegram
    gives them, so a malformed update is refused whole instead of failing half way."""
    update_id = update.get("update_id")
    if update_id is not None and not _is_int(update_id):
        raise BadUpdate("update_id", "update_id must be an integer")
    msg = update.get("message")
    if msg is not None:
        if not isinstance(msg, dict):
            raise BadUpdate("message", "message must be an object")
        _check_message(msg, "message")
        if not isinstance(msg.get("text", ""), str):
            raise BadUpdate("message.text", "text must be a string")
    query = update.get("callback_query")
    if query is not None:
        if not isinstance(query, dict):
            raise BadUpdate("callback_query", "callback_query must be an object")
        if not isinstance(query.get("data", ""), str):
            raise BadUpdate("callback_query.data", "data must be a string")
        if not isinstance(query.get("id", ""), (str, int)):
            raise BadUpdate("callback_query.id", "id must be a string")
        if query.get("message") is not None:
            if not isinstance(query["message"], dict):
                raise BadUpdate("callback_query.message", "message must be an object")
            _check_message(query["message"], "callback_query.message")
        _check_user(query.get("from"), "callback_query.from")


def _check_message(msg: dict, where: str) -> None:
    chat = msg.get("chat")
    if not isinstance(chat, dict) or not _is_int(chat.get("id")):
        raise BadUpdate(f"{where}.chat.id", "chat must be an object with an integer id")
    _check_user(msg.get("from"), f"{where}.from")


def _check_user(user: Any, where: str) -> None:
    if user is not None and not isinstance(user, dict):
        raise BadUpdate(where, "from must be an object")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
