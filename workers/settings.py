"""Settings of the Telegram side (worker, bot, dispatcher), read from the environment once.

Every variable, its default and its meaning are in ``base/config.py``'s ``ENVIRONMENT`` (the
one table the README lists); this module reads the ones the notification path uses.

>>> s = NotifySettings.from_env({"TELEGRAM_BOT_TOKEN": "1:x", "PASARWATCH_NOTIFY_RETRY_INTERVALS": "1, 2"})
>>> s.has_token, s.retry_intervals, s.group_window
(True, (1, 2), 5.0)
>>> NotifySettings.from_env({}).has_token
False
"""
from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from base.config import ENVIRONMENT, is_true

@dataclass(frozen=True)
class NotifySettings:
    redis_url: str  # the notifications' Redis: RQ_REDIS_URL, else REDIS_URL (base.config.Settings.notify_url)
    bot_token: str
    base_url: str
    webhook_secret: str
    public_url: str
    catalog_dir: Path
    group_window: float
    retry_intervals: tuple[int, ...]
    lease: float
    sweep_interval: float
    request_timeout: float
    data_url: str = ""  # the data Redis (REDIS_URL), where silences are: a flush reads them there
    data_cluster: bool = False

    @property
    def has_token(self) -> bool:
        return bool(self.bot_token)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NotifySettings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str:
            return env.get(name, ENVIRONMENT[name][0])

        public_url = get("PASARWATCH_PUBLIC_URL") or (
            f"http://{get('PASARWATCH_HOST')}:{get('PASARWATCH_PORT')}")
        intervals = tuple(int(float(part)) for part in get("PASARWATCH_NOTIFY_RETRY_INTERVALS").split(",")
                          if part.strip())
        return cls(
            redis_url=get("RQ_REDIS_URL") or get("REDIS_URL") or "redis://127.0.0.1:6379/0",
            bot_token=get("TELEGRAM_BOT_TOKEN").strip(),
            base_url=get("TELEGRAM_BASE_URL").strip(),
            webhook_secret=get("TELEGRAM_WEBHOOK_SECRET"),
            public_url=public_url.rstrip("/"),
            catalog_dir=Path(get("PASARWATCH_RULES_DIR")) / "catalog",
            group_window=float(get("PASARWATCH_NOTIFY_GROUP_WINDOW")),
            retry_intervals=intervals,
            lease=float(get("PASARWATCH_NOTIFY_LEASE")),
            sweep_interval=float(get("PASARWATCH_NOTIFY_SWEEP")),
            request_timeout=float(get("TELEGRAM_TIMEOUT")),
            data_url=get("REDIS_URL"),
            data_cluster=is_true(get("PASARWATCH_REDIS_CLUSTER")),
        )


_installed: list[NotifySettings] = []


def install(settings: NotifySettings) -> None:
    """Make ``settings`` the process's (the worker's, before RQ forks a work horse per job, so its
    jobs see the URLs it was started with rather than re-reading the environment)."""
    _installed[:] = [settings]


def get_settings() -> NotifySettings:
    """The process's settings: the installed ones, else read from the environment on first use."""
    return _installed[0] if _installed else _from_env()


@functools.cache
def _from_env() -> NotifySettings:
    return NotifySettings.from_env()
