"""python-telegram-bot, set up the one way Pasarwatch uses it.

``make_bot`` builds PTB's (asyncio) ``Bot`` from the settings; ``TelegramClient`` drives it
from synchronous code (an RQ job) on a private event loop; ``perform`` carries out a bot reply
(``workers.commands.Reply``) in asyncio code (the webhook and long polling).

The bot is never ``initialize()``d: that would call getMe before every job, and sending needs
only the HTTP clients, which exist from construction.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from datetime import timedelta
from typing import Any

import anyio
import httpx
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import RetryAfter
from telegram.request import HTTPXRequest

from workers.messages import OutMessage
from workers.settings import NotifySettings

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
# Long polling holds getUpdates open this long (seconds); its read timeout must exceed it.
POLL_TIMEOUT = 25


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for the process. Building one reads the CA bundle (~30 ms), which would
    otherwise happen for every job; RQ's work horses inherit this one from the worker."""
    return httpx.create_ssl_context()


def warm_up() -> None:
    """Do in an RQ worker, before it forks a work horse per job, what every send would
    otherwise do first in the horse: build the TLS context, import httpcore (httpx imports it
    when a client is made) and load anyio's asyncio backend (loaded on first use). Saves each
    job about 0.2 s of CPU."""
    httpx.AsyncHTTPTransport(verify=tls_context())
    anyio.run(anyio.sleep, 0)


def make_bot(settings: NotifySettings, polling: bool = False) -> Bot:
    """A bot for sending (or, with ``polling``, also for long-polling getUpdates)."""
    # httpx logs every request URL at INFO, and a Bot API URL contains the bot's token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    timeout = settings.request_timeout
    tls = {"verify": tls_context()}
    request = HTTPXRequest(connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout,
                           pool_timeout=timeout, httpx_kwargs=tls)
    updates = request
    if polling:
        updates = HTTPXRequest(connect_timeout=timeout, read_timeout=POLL_TIMEOUT + timeout,
                               write_timeout=timeout, pool_timeout=timeout, httpx_kwargs=tls)
    return Bot(settings.bot_token, base_url=settings.base_url, request=request,
               get_updates_request=updates)


async def close_bot(bot: Bot) -> None:
    # Bot.shutdown() skips bots that were never initialize()d, so close the clients directly
    # (each once: a sending bot uses one client for both).
    for request in dict.fromkeys(bot._request):  # noqa: SLF001
        await request.shutdown()


def keyboard(buttons: Any) -> InlineKeyboardMarkup | None:
    """Inline keyboard from rows of (label, callback data)."""
    rows = [[InlineKeyboardButton(label, callback_data=data) for label, data in row] for row in buttons]
    return InlineKeyboardMarkup(rows) if any(rows) else None


async def send(bot: Bot, chat: int, message: OutMessage) -> int:
    """Send one message; returns its message_id. Raises PTB's errors unchanged."""
    sent = await bot.send_message(
        chat_id=chat, text=message.text, parse_mode=ParseMode.HTML,
        disable_notification=message.silent, reply_markup=keyboard(message.buttons),
        link_preview_options=NO_PREVIEW)
    return sent.message_id


async def perform(bot: Bot, reply: Any) -> None:
    """Carry out one bot reply (``workers.commands.Reply``)."""
    params = dict(reply.params)
    if "buttons" in params:
        params["reply_markup"] = keyboard(params.pop("buttons"))
    if reply.method == "sendMessage":
        await bot.send_message(parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW, **params)
    elif reply.method == "editMessageText":
        await bot.edit_message_text(parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW, **params)
    elif reply.method == "answerCallbackQuery":
        await bot.answer_callback_query(**params)
    else:
        raise ValueError(f"unknown reply method {reply.method!r}")


def retry_after_seconds(exc: RetryAfter) -> float:
    """Seconds a 429 asks to wait (PTB gives an int or a timedelta, depending on its settings)."""
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramClient:
    """Synchronous sending for RQ jobs: one event loop and one bot for the client's life."""

    def __init__(self, settings: NotifySettings):
        self.loop = asyncio.new_event_loop()
        self.bot = make_bot(settings)

    def send(self, chat: int, message: OutMessage) -> int:
        return self.loop.run_until_complete(send(self.bot, chat, message))

    def close(self) -> None:
        try:
            self.loop.run_until_complete(close_bot(self.bot))
        finally:
            self.loop.close()

    def __enter__(self) -> TelegramClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
