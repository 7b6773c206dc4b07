"""The RQ job that delivers one notification to Telegram.

``deliver(nid)`` runs in an RQ worker (queue ``notifications``). It is safe to run any number
of times for one notification, concurrently or after a crash:

- only the holder of the notification's lease sends (``workers.lease``);
- at its first run the notification is sealed: no alert joins it any more, and its messages
  are rendered once and stored, so every later run sends the very same parts;
- each part is recorded as sent (with its message_id) right after Telegram accepts it, and a
  later run starts after the last recorded part.

So a notification is sent once unless a worker dies in the instant between Telegram accepting
a message and the record of it (Telegram's API has no idempotency key to close that gap).

Failures: 429 reschedules the job for ``retry_after`` (the worker goes on with other chats);
network errors and 5xx raise, so RQ retries with the configured backoff and, after the last
try, keeps the job in its failed registry; 403 (the user blocked the bot) unsubscribes the
chat everywhere; other refusals (400, 401) fail at once. Each outcome and its reason is in the
notification record, which ``GET /api/v1/notifications`` shows.
"""
from __future__ import annotations

import functools
import logging
import secrets
import time
from pathlib import Path

import redis
from rq import Queue, get_current_job
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError

from base.catalog import Catalog, load_catalog
from stores import histograms
from workers import notifications as store
from workers import ratelimit
from workers.dispatch import QUEUE, enqueue_delivery
from workers.lease import Lease
from workers.messages import OutMessage, render_notification
from workers.settings import NotifySettings, get_settings
from workers.subscriptions import muted_keys, unsubscribe_all
from workers.telegram import TelegramClient, retry_after_seconds

log = logging.getLogger("pasarwatch.telegram")

# A wait for a send slot up to this long (seconds) happens in place; a longer one (a group's
# per-minute limit) reschedules the job. It covers the overall and per-chat limits, which
# never book further ahead than about a second (ratelimit.GLOBAL_WINDOW, CHAT_GAP).
INLINE_WAIT = 2.0
# How long ago a booked send slot may lie and still be used (a job late from the scheduler).
SLOT_STALE = 60.0


class DeliveryError(Exception):
    """A send failed in a way worth retrying (network error, Telegram 5xx)."""


@functools.cache
def worker_catalog(directory: Path) -> Catalog:
    return load_catalog(directory)


def deliver(nid: str) -> str:
    """RQ entry point; returns what happened (kept as the job's result)."""
    settings = get_settings()
    job = get_current_job()
    client = job.connection if job is not None else redis.Redis.from_url(settings.redis_url)
    return Delivery(client, settings, worker_catalog(settings.catalog_dir)).run(nid)


class Delivery:
    def __init__(self, client: redis.Redis, settings: NotifySettings, catalog: Catalog):
        self.client = client
        self.settings = settings
        self.catalog = catalog
        self.queue = Queue(QUEUE, connection=client)

    def run(self, nid: str) -> str:
        record = store.load(self.client, nid)
        if record is None:
            return "unknown notification"
        if record.state in store.FINAL:
            return f"already {record.state}"
        lease = Lease(self.client, nid, self.settings.lease)
        if not lease.acquire():
            return "another worker is delivering it"
        with lease:
            record = store.load(self.client, nid)  # as it is now that we hold the lease
            if record is None or record.state in store.FINAL:
                return "already done"
            return self._deliver(record, lease)

    # -- the steps ------------------------------------------------------------------------------
    def _deliver(self, record: store.Record, lease: Lease) -> str:
        if record.parts is None:
            self._seal(record)
        if not record.parts:
            self._finish(record, "not_sent", "muted: the chat muted every alert in it")
            return "not sent: muted"
        if not self.settings.has_token:
            self._finish(record, "not_sent", "TELEGRAM_BOT_TOKEN is not set")
            return "not sent: no bot token"
        with TelegramClient(self.settings) as telegram:
            for index in range(record.sent_parts, len(record.parts)):
                outcome = self._send_part(telegram, record, index, lease)
                if outcome is not None:
                    return outcome
        self._finish(record, "sent", f"{len(record.parts)} message(s)")
        return "sent"

    def _seal(self, record: store.Record) -> None:
        # Setting `sealed` first makes any dispatcher transaction that would still add an alert
        # fail its WATCH, so the items read next are final.
        self.client.hset(store.record_key(record.id), "sealed", 1)
        items = store.load_items(self.client, record.id)
        keys = list(dict.fromkeys(str(a.get("key")) for a in items))
        muted = muted_keys(self.client, record.chat, keys)
        kept = [a for a in items if str(a.get("key")) not in muted]
        parts = render_notification(kept, self.catalog, self.settings.public_url, record.id)
        store.save_parts(self.client, record.id, parts, [k for k in keys if k not in muted],
                         len(kept), time.time())
        record.parts, record.sealed = parts, True

    def _send_part(self, telegram: TelegramClient, record: store.Record, index: int,
                   lease: Lease) -> str | None:
        now = time.time()
        if record.slot is not None and record.slot >= now - SLOT_STALE:
            slot = record.slot
        else:
            slot = ratelimit.reserve(self.client, record.chat, now,
                                     f"{record.id}:{index}:{secrets.token_hex(4)}")
        record.slot = None
        if slot - now > INLINE_WAIT:
            self._reschedule(record, slot, "waiting for a send slot (Telegram's rate limits)", slot=slot)
            return "rescheduled: rate limit"
        if slot > now:
            time.sleep(slot - now)  # a short wait for our own booked slot, not synchronisation
        if not lease.renew():  # checked right before sending, not only by the renewing thread
            return "lease lost to another worker"
        try:
            assert record.parts is not None, "a record is sealed before its parts are sent"
            message_id = self._timed_send(telegram, record.chat, record.parts[index])
        except RetryAfter as exc:
            seconds = retry_after_seconds(exc)
            until = time.time() + seconds
            ratelimit.hold(self.client, record.chat, until, time.time())
            self._reschedule(record, until, f"Telegram 429: retry after {seconds:g}s")
            return "rescheduled: 429"
        except Forbidden as exc:
            topics = unsubscribe_all(self.client, record.chat)
            log.warning("chat %s refused the bot (%s): unsubscribed from %d topic(s)", record.chat, exc, topics)
            self._finish(record, "failed", f"403 Forbidden ({exc}): chat unsubscribed")
            return "failed: 403, unsubscribed"
        except ChatMigrated as exc:
            log.warning("chat %s became %s; its notification is not sent", record.chat, exc.new_chat_id)
            self._finish(record, "failed", f"chat migrated to {exc.new_chat_id}")
            return "failed: chat migrated"
        except (BadRequest, InvalidToken) as exc:
            self._finish(record, "failed", f"{type(exc).__name__}: {exc}")
            return f"failed: {exc}"
        except NetworkError as exc:  # timeouts, connection errors, 5xx
            self._retry_or_fail(record, exc)
        except TelegramError as exc:
            self._finish(record, "failed", f"{type(exc).__name__}: {exc}")
            return f"failed: {exc}"
        store.part_sent(self.client, record, index, message_id, time.time())
        return None

    def _timed_send(self, telegram: TelegramClient, chat: int, part: OutMessage) -> int:
        """Send one part, and add how long Telegram took (answered or failed) to the
        ``pasarwatch_telegram_send_seconds`` histogram that /metrics serves."""
        started = time.perf_counter()
        try:
            return telegram.send(chat, part)
        finally:
            seconds = time.perf_counter() - started
            try:
                pipe = self.client.pipeline(transaction=False)
                histograms.record(pipe, histograms.TELEGRAM_SEND, [seconds])
                pipe.execute()
            except redis.RedisError as exc:  # a lost measurement must not change the send's outcome
                log.warning("could not record a Telegram send duration: %s", exc)

    # -- outcomes -------------------------------------------------------------------------------
    def _finish(self, record: store.Record, state: str, reason: str) -> None:
        store.finalize(self.client, record.id, state, reason, time.time())
        record.state, record.reason = state, reason

    def _reschedule(self, record: store.Record, at: float, reason: str, slot: float | None = None) -> None:
        now = time.time()
        count = self.client.hincrby(store.record_key(record.id), "reschedules", 1)
        deadline = at + self.settings.lease + store.SCHEDULER_SLACK
        store.set_pending(self.client, record.id, reason, now, deadline, slot)
        enqueue_delivery(self.queue, record.id, self.settings, at=at, attempt=f"r{count}")

    def _retry_or_fail(self, record: store.Record, exc: Exception) -> None:
        attempts = store.count_attempt(self.client, record.id)
        reason = f"{type(exc).__name__}: {exc}"
        job = get_current_job()
        now = time.time()
        if job is not None and job.retries_left:
            interval = job.get_retry_interval()
            store.set_pending(self.client, record.id,
                              f"{reason} (attempt {attempts}, retrying in {interval}s)", now,
                              now + interval + self.settings.lease + store.SCHEDULER_SLACK)
        else:
            self._finish(record, "failed", f"{reason} (after {attempts} attempt(s))")
        raise DeliveryError(reason) from exc
