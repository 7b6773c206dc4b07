"""What the bot says back: its commands and button presses, over plain update dicts.

``handle_update(update, redis, catalog, notify=...)`` takes one Telegram update as JSON (a
dict), reads and writes Redis (asyncio clients: prices, firing alerts and acknowledgements in
the data Redis, subscriptions and mutes in the notifications' one, by default the same), and
returns the replies to make as ``Reply`` values;
it never talks to Telegram itself, so the webhook and long polling share it and tests can
look at its answers.

Commands (Indonesian first, English accepted):

    /start, /mulai                     what the bot does
    /langganan, /subscribe KOMODITAS [PROVINSI]
    /berhenti, /unsubscribe [KOMODITAS [PROVINSI]]   (no argument: everything)
    /daftar, /list                     this chat's subscriptions
    /harga, /latest KOMODITAS [PROVINSI]  current prices and firing alerts
    /bisukan, /mute DURASI             e.g. 30m, 2h, 1d, "2 jam"; "off" to end
    /bantuan, /help
"""
from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from base.names import normalise
from base import keys
from base.keys import Partition
from stores import partitioned
from stores.silences import acknowledge, announce
from workers import notifications as store
from workers import subscriptions as subs
from workers.updates import check_update
from workers.messages import MUTE_LABEL, Names, ack_line, esc, local_time, rupiah

UPDATE_SEEN_TTL = 86400
MAX_MUTE = 30 * 86400
MUTE_BUTTON_SECONDS = 3600
LATEST_ROWS = 20
WILDCARDS = {"semua", "all", "*"}
# What a topic (commodity and province) may be typed as: the longest names together are under 80
# characters, and a bound keeps a 4,096-character message from costing more than a short one.
MAX_TOPIC_CHARS = 120


@dataclass(frozen=True)
class Reply:
    """One Bot API call to make: ``method`` and its parameters (``buttons``: rows of (label, data))."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)


def message(chat: int, text: str) -> Reply:
    return Reply("sendMessage", {"chat_id": chat, "text": text})


@dataclass
class Context:
    chat: int
    user: str
    args: list[str]
    redis: Any  # the data Redis: prices, firing alerts
    catalog: Any
    now: float
    partitions: list[Partition]
    notify: Any  # the notifications' Redis: subscriptions, mutes


Handler = Callable[[Context], Awaitable[list[Reply]]]


async def handle_update(update: dict, redis: Any, catalog: Any, now: float | None = None,
                        partitions: list[Partition] | None = None, notify: Any = None) -> list[Reply]:
    """The replies to one update; an update seen before (Telegram redelivers) gets none.

    ``redis``: the data Redis; ``notify``: the notifications' Redis (default: ``redis``).
    ``partitions``: where the engines keep prices and firing alerts (read from Redis if not given).
    Raises BadUpdate, before anything is recorded, for an update of the wrong shape.
    """
    check_update(update)
    now = time.time() if now is None else now
    notify = redis if notify is None else notify
    update_id = update.get("update_id")
    marker = keys.TG_UPDATE.of(update_id=update_id)
    if update_id is not None and not await notify.set(marker, 1, nx=True, ex=UPDATE_SEEN_TTL):
        return []
    try:
        if partitions is None:
            partitions = await partitioned.stored_async(redis)
        if isinstance(update.get("callback_query"), dict):
            return await handle_callback(update["callback_query"], redis, now, partitions, notify)
        if isinstance(update.get("message"), dict):
            return await handle_message(update["message"], redis, catalog, now, partitions, notify)
        return []
    except Exception:
        if update_id is not None:
            await notify.delete(marker)  # let Telegram's redelivery try again
        raise


async def handle_message(msg: dict, redis: Any, catalog: Any, now: float, partitions: list[Partition],
                         notify: Any) -> list[Reply]:
    chat = (msg.get("chat") or {}).get("id")
    text = msg.get("text") or ""
    if chat is None:
        return []
    if not text.startswith("/"):
        # In groups the bot sees commands only; in a private chat a hint helps.
        return [message(chat, "Ketik /bantuan untuk melihat perintah.")] if chat > 0 else []
    command, args = parse_command(text)
    handler = COMMANDS.get(command)
    if handler is None:
        return [message(chat, f"Perintah /{esc(command, 32)} tidak dikenal. Ketik /bantuan.")]
    try:
        return await handler(Context(chat, user_name(msg.get("from")), args, redis, catalog, now, partitions, notify))
    except Unknown as exc:
        return [message(chat, str(exc))]


def parse_command(text: str) -> tuple[str, list[str]]:
    """``/Langganan@pasarwatch_bot cabai rawit`` -> ``("langganan", ["cabai", "rawit"])``.

    >>> parse_command("/Langganan@pasarwatch_bot cabai  rawit")
    ('langganan', ['cabai', 'rawit'])
    """
    head, *args = text.split()
    return head[1:].split("@", 1)[0].lower(), args


def user_name(user: dict | None) -> str:
    if not user:
        return "?"
    if isinstance(user.get("username"), str) and user["username"]:
        return "@" + user["username"][:64]
    name = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if isinstance(p, str) and p)
    return name[:128] or str(user.get("id", "?"))[:32]


# --- resolving what a user typed ----------------------------------------------------------------

class Unknown(Exception):
    """What the user typed names no commodity or province; the message (the reply) says
    what might."""


def resolve_topic(catalog: Any, words: list[str]) -> tuple[str, str]:
    """(commodity id or ``*``, province code or ``*``) from free words: the longest run of
    leading words that names a commodity (id, name or alias), then a province in the rest.

    The text is bounded, then tokenised once; each lookup is one dict probe per word count up to
    the longest name's, so the work does not grow with what was typed.
    """
    typed = " ".join(words)
    if len(typed) > MAX_TOPIC_CHARS:
        raise Unknown(f"Terlalu panjang ({len(typed)} karakter): sebutkan komoditas dan provinsi "
                      f"saja, paling banyak {MAX_TOPIC_CHARS} karakter.")
    if words and words[0].lower() in WILDCARDS:
        commodity, rest = subs.ALL, normalise(" ".join(words[1:])).split()
    else:
        tokens = normalise(typed).split()
        found = catalog.commodity_names.match_prefix(tokens)
        if found is None:
            raise Unknown(_unknown("komoditas", typed, _commodity_hints(catalog, tokens)))
        commodity, used = found
        rest = tokens[used:]
    place = " ".join(rest)
    if not place or place in WILDCARDS:
        return commodity, subs.ALL
    province = catalog.province_names.resolve(place)
    if province is None:
        raise Unknown(_unknown("provinsi", place, [
            catalog.provinces[code].name for code in catalog.suggest_province(place)]))
    return commodity, province


def _commodity_hints(catalog: Any, tokens: list[str]) -> list[str]:
    """Names of commodities close to what was typed; a province may follow the commodity, so
    shorter runs of leading words are tried too (as many as the longest name has words)."""
    for count in range(min(len(tokens), catalog.commodity_names.most_words + 1), 0, -1):
        found = catalog.suggest_commodity(" ".join(tokens[:count]))
        if found:
            return [catalog.commodities[cid].name_id for cid in found]
    return []


def _unknown(what: str, typed: str, suggestions: list[str]) -> str:
    text = f"Tidak ada {what} bernama <b>{esc(typed)}</b>."
    if suggestions:
        text += " Mungkin maksud Anda: " + ", ".join(f"<code>{esc(s)}</code>" for s in suggestions) + "?"
    return text


def topic_label(catalog: Any, commodity: str, province: str) -> str:
    if commodity == subs.ALL:
        what = "semua komoditas"
    else:
        item = catalog.commodities.get(commodity)
        what = f"<b>{esc(item.name_id if item else commodity)}</b>"
    if province == subs.ALL:
        return f"{what} di seluruh Indonesia"
    place = catalog.provinces.get(province)
    return f"{what} di <b>{esc(place.name if place else province)}</b>"


def parse_duration(text: str) -> int | None:
    """Seconds in ``30m``, ``2h``, ``1d``, ``2 jam``, ``90 menit``, ``1 hari``; 0 for off.

    >>> [parse_duration(t) for t in ("30m", "2h", "1d", "2 jam", "90 menit", "off", "soon")]
    [1800, 7200, 86400, 7200, 5400, 0, None]
    """
    text = text.strip().lower()
    if text in {"off", "0", "batal", "stop", "selesai"}:
        return 0
    match = re.fullmatch(r"(\d{1,9})\s*(m|min|menit|h|j|jam|hour|hours|d|hari|day|days)", text)
    if not match:
        return None
    number, unit = int(match[1]), match[2]
    if unit in {"m", "min", "menit"}:
        return number * 60
    if unit in {"h", "j", "jam", "hour", "hours"}:
        return number * 3600
    return number * 86400


# --- commands --------------------------------------------------------------------------------------

HELP = """<b>Pasarwatch</b> mengirim peringatan dini saat harga pangan di pasar melonjak atau anjlok.

/langganan KOMODITAS [PROVINSI] – berlangganan peringatan, mis. <code>/langganan cabai rawit merah jawa barat</code>
/berhenti [KOMODITAS [PROVINSI]] – berhenti (tanpa argumen: semua)
/daftar – langganan chat ini
/harga KOMODITAS [PROVINSI] – harga terkini dan peringatan aktif
/bisukan DURASI – diam sementara, mis. <code>/bisukan 2 jam</code>; <code>/bisukan off</code> untuk mengakhiri
/bantuan – pesan ini

English: /subscribe, /unsubscribe, /list, /latest, /mute, /help. Gunakan <code>semua</code> untuk semua komoditas."""


async def cmd_start(ctx: Context) -> list[Reply]:
    return [message(ctx.chat, HELP)]


async def cmd_subscribe(ctx: Context) -> list[Reply]:
    if not ctx.args:
        return [message(ctx.chat, "Contoh: <code>/langganan cabai rawit merah jawa barat</code> "
                                  "atau <code>/langganan beras-medium</code> (seluruh Indonesia).")]
    commodity, province = resolve_topic(ctx.catalog, ctx.args)
    async with ctx.notify.pipeline() as pipe:
        subs.subscribe(pipe, ctx.chat, commodity, province)
        await pipe.execute()
    return [message(ctx.chat, f"✅ Berlangganan {topic_label(ctx.catalog, commodity, province)}. "
                              "Anda akan menerima peringatan saat harganya tidak wajar.")]


async def cmd_unsubscribe(ctx: Context) -> list[Reply]:
    if not ctx.args:
        count = await subs.unsubscribe_all(ctx.notify, ctx.chat)
        return [message(ctx.chat, f"Berhenti dari {count} langganan. Tidak ada lagi peringatan untuk chat ini.")]
    commodity, province = resolve_topic(ctx.catalog, ctx.args)
    async with ctx.notify.pipeline() as pipe:
        subs.unsubscribe(pipe, ctx.chat, commodity, province)
        removed, _ = await pipe.execute()
    label = topic_label(ctx.catalog, commodity, province)
    if not removed:
        return [message(ctx.chat, f"Chat ini tidak berlangganan {label}. Lihat /daftar.")]
    return [message(ctx.chat, f"Berhenti berlangganan {label}.")]


async def cmd_list(ctx: Context) -> list[Reply]:
    members = sorted(await ctx.notify.smembers(subs.chat_key(ctx.chat)))
    mute_until = await ctx.notify.get(subs.chat_mute_key(ctx.chat))
    lines = [f"• {topic_label(ctx.catalog, *subs.parse_topic(m))}" for m in members[:50]]
    text = ("<b>Langganan chat ini:</b>\n" + "\n".join(lines)) if lines else \
        "Chat ini belum berlangganan apa pun. Contoh: <code>/langganan cabai rawit merah</code>"
    if mute_until:
        text += f"\n\n🔕 Dibisukan sampai {local_time(float(mute_until), None)}."
    return [message(ctx.chat, text)]


async def cmd_mute(ctx: Context) -> list[Reply]:
    seconds = parse_duration(" ".join(ctx.args)) if ctx.args else None
    if seconds is None:
        return [message(ctx.chat, "Contoh: <code>/bisukan 2h</code>, <code>/bisukan 30 menit</code>, "
                                  "<code>/bisukan 1 hari</code>; <code>/bisukan off</code> untuk mengakhiri.")]
    seconds = min(seconds, MAX_MUTE)
    async with ctx.notify.pipeline() as pipe:
        subs.mute_chat(pipe, ctx.chat, seconds, ctx.now)
        await pipe.execute()
    if seconds == 0:
        return [message(ctx.chat, "🔔 Peringatan aktif kembali.")]
    return [message(ctx.chat, f"🔕 Dibisukan sampai {local_time(ctx.now + seconds, None)}.")]


async def cmd_latest(ctx: Context) -> list[Reply]:
    if not ctx.args:
        return [message(ctx.chat, "Contoh: <code>/harga cabai rawit merah jawa barat</code>")]
    commodity, province = resolve_topic(ctx.catalog, ctx.args)
    if commodity == subs.ALL:
        return [message(ctx.chat, "Sebutkan satu komoditas, mis. <code>/harga bawang merah</code>.")]
    prices = []
    if ctx.partitions:  # else nothing was written yet
        latest = partitioned.of_series(ctx.partitions, commodity).latest
        async for _, blob in ctx.redis.hscan_iter(latest, match=f"{commodity}/*"):
            price = orjson.loads(blob)
            if province == subs.ALL or price.get("province") == province:
                prices.append(price)
    alerts = []
    for blob in await partitioned.hash_values(ctx.redis, ctx.partitions, "firing"):
        alert = orjson.loads(blob)
        if alert.get("commodity") == commodity and province in (subs.ALL, alert.get("province")):
            alerts.append(alert)
    return [message(ctx.chat, latest_text(ctx.catalog, commodity, province, prices, alerts))]


def latest_text(catalog: Any, commodity: str, province: str, prices: list[dict], alerts: list[dict]) -> str:
    """The /harga answer: prices by market, highest first, then the alerts now firing."""
    lines = [f"<b>Harga terkini</b> {topic_label(catalog, commodity, province)}"]
    if not prices:
        lines.append("Belum ada data harga.")
    for price in sorted(prices, key=lambda p: -float(p.get("price") or 0))[:LATEST_ROWS]:
        names = Names(catalog, price)
        lines.append(f"• {names.place()}: <b>{esc(rupiah(price.get('price'), price.get('unit') or names.unit))}</b>"
                     f" · {local_time(price.get('ts'), names.province)}")
    if len(prices) > LATEST_ROWS:
        lines.append(f"… dan {len(prices) - LATEST_ROWS} pasar lain")
    if alerts:
        lines.append("\n<b>Peringatan aktif:</b>")
        for alert in sorted(alerts, key=lambda a: a.get("started_at") or 0)[:LATEST_ROWS]:
            names = Names(catalog, alert)
            summary = esc(alert.get("summary") or alert.get("rule") or "", 120)
            lines.append(f"⚠️ {names.place()}: {summary} sejak {local_time(alert.get('started_at'), names.province)}")
    return "\n".join(lines)


COMMANDS: dict[str, Handler] = {
    "start": cmd_start, "mulai": cmd_start, "help": cmd_start, "bantuan": cmd_start,
    "subscribe": cmd_subscribe, "langganan": cmd_subscribe,
    "unsubscribe": cmd_unsubscribe, "berhenti": cmd_unsubscribe,
    "list": cmd_list, "daftar": cmd_list,
    "latest": cmd_latest, "harga": cmd_latest,
    "mute": cmd_mute, "bisukan": cmd_mute,
}


# --- buttons ---------------------------------------------------------------------------------------

async def handle_callback(query: dict, redis: Any, now: float, partitions: list[Partition],
                          notify: Any) -> list[Reply]:
    """ "m:{id}" mutes the notification's alerts for this chat for an hour; "a:{id}" acknowledges them."""
    answer_id = query.get("id")
    msg = query.get("message") or {}
    chat = (msg.get("chat") or {}).get("id")
    action, _, nid = str(query.get("data") or "").partition(":")
    data = await notify.hgetall(store.record_key(nid)) if nid else {}
    record = store.Record.from_hash(data) if data else None
    if record is None or record.chat != chat or action not in ("m", "a"):
        return [Reply("answerCallbackQuery", {"callback_query_id": answer_id,
                                              "text": "Pemberitahuan ini sudah kedaluwarsa."})]
    by = user_name(query.get("from"))
    if action == "m":
        async with notify.pipeline() as pipe:
            for key in record.keys:
                subs.mute_alert(pipe, chat, key, MUTE_BUTTON_SECONDS, now)
            await pipe.execute()
        return [Reply("answerCallbackQuery", {"callback_query_id": answer_id,
                                              "text": "🔕 Peringatan ini dibisukan 1 jam."})]
    firing = [key for key in record.keys if await partitioned.has_field(redis, partitions, "firing", key)]
    events: list[bytes] = []
    async with redis.pipeline() as pipe:
        for key in firing:
            acknowledge(pipe, key, by, now, events)  # the same record the dashboard's Ack makes
        await pipe.execute()
    await announce(redis, events)
    replies = [Reply("answerCallbackQuery", {"callback_query_id": answer_id,
                                             "text": "👍 Diakui." if firing else "Peringatan ini sudah selesai."})]
    edited = _acknowledged_text(record, msg.get("message_id"), by, now)
    if firing and edited is not None:
        replies.append(Reply("editMessageText", {
            "chat_id": chat, "message_id": msg["message_id"], "text": edited,
            "buttons": [[(MUTE_LABEL, f"m:{record.id}")]]}))
    return replies


def _acknowledged_text(record: store.Record, message_id: Any, by: str, now: float) -> str | None:
    if not record.parts or message_id not in record.message_ids:
        return None
    return record.parts[record.message_ids.index(message_id)].text + ack_line(by, now)
