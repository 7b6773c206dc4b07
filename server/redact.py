"""Secrets never reach the log: tokens in query strings and bare tokens are redacted.

Browsers cannot set headers on a WebSocket, so they send ``?token=``; uvicorn's handshake log
line (``"WebSocket /ws/prices?token=..." [accepted]``) and its access log print the path with
its query string. A filter on the log handlers rewrites every record before it is written.

>>> redact('127.0.0.1:5 - "WebSocket /ws/prices?market=x&token=pw_0123456789abcdef_s3cret" [accepted]')
'127.0.0.1:5 - "WebSocket /ws/prices?market=x&token=[redacted]" [accepted]'
>>> redact("lookup of pw_0123456789abcdef_s3cr-et_x failed")
'lookup of pw_0123456789abcdef_[redacted] failed'
"""
from __future__ import annotations

import copy
import logging
import re

_QUERY_TOKEN = re.compile(r"(?i)((?:^|[?&;\s])(?:access_)?token=)[^&;\s\"']*")
_BARE_TOKEN = re.compile(r"\b(pw_[0-9a-f]{16}_)[A-Za-z0-9_\-]+")  # the key id stays: it names the credential


def redact(text: str) -> str:
    return _BARE_TOKEN.sub(r"\1[redacted]", _QUERY_TOKEN.sub(r"\1[redacted]", text))


class RedactTokens(logging.Filter):
    """A handler filter: the record's final message, with tokens redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def uvicorn_log_config() -> dict:
    """uvicorn's own logging configuration with RedactTokens on each of its handlers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_tokens"] = {"()": RedactTokens}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact_tokens")
    return config


def redact_root_handlers() -> None:
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactTokens())
