"""Telegram message text for alert events: pure functions over plain data, no I/O.

Every value that comes from outside (catalog names, rule summaries, detector reasons) is
escaped for Telegram's HTML parse mode, and clipped so that one alert's block always fits in a
message (Telegram's 4096 characters count after entity parsing: ``visible_len``); a
notification is split only between blocks, so no tag is ever cut.

An alert's headline is its ``message``: the text of the rule's ``message:`` template for this
transition, rendered by the engine (rules/events.py), or the default text built from the rule's
summary when the rule has no template. Events stored before messages existed fall back to
the summary.

>>> from base.catalog import load_catalog
>>> alert = {"type": "alert", "key": "price-spike/cabai-rawit-merah/pasar-agung", "state": "firing",
...          "severity": "warning", "commodity": "cabai-rawit-merah", "market": "pasar-agung",
...          "province": "32", "price": 387500.0, "ts": 1719800000.0, "started_at": 1719800000.0,
...          "expected": {"level": 60000.0}, "detectors": ["zscore"],
...          "reasons": {"zscore": "z=5.1 vs mean Rp 60.000"}, "summary": "Harga melonjak",
...          "message": "Cabai Rawit Merah di Pasar Agung naik ke Rp 387.500"}
>>> [message] = render_notification([alert], load_catalog(), "https://pw.example", "ref1")
>>> print(message.text)
⚠️ <b>SIAGA</b> · Cabai Rawit Merah di Pasar Agung naik ke Rp 387.500
<b>Cabai Rawit Merah</b> di <b>Pasar Agung</b>, Jawa Barat
Harga <b>Rp 387.500/kg</b> (+545,8% dari biasanya Rp 60.000)
Detektor: zscore
• zscore: z=5.1 vs mean Rp 60.000
🕒 1 Jul 2024 09:13 WIB
<a href="https://pw.example/#commodity=cabai-rawit-merah&amp;province=32&amp;market=pasar-agung">Buka dasbor</a>
>>> message.buttons
((('Bisukan 1 jam', 'm:ref1'), ('Ack', 'a:ref1')),)
"""
from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from base.money import format_rupiah

TELEGRAM_LIMIT = 4096
MUTE_LABEL = "Bisukan 1 jam"
ACK_LABEL = "Ack"

# The dashboard's words (static/js/i18n.js), which the rule ladders use too: one word, one meaning.
SEVERITIES = {
    "info": ("ℹ️", "WASPADA"),
    "warning": ("⚠️", "SIAGA"),
    "critical": ("🚨", "AWAS"),
}
# Indonesia keeps no daylight saving time, so the abbreviation fixes the offset; this avoids
# depending on the host's tz database for the three zones that matter.
UTC_OFFSETS = {"WIB": 7, "WITA": 8, "WIT": 9}
# Our own markup: every < and > of a value is escaped, so this matches only tags we wrote.
_TAG = re.compile(r"<[^<>]+>")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des")

# Longest raw text kept of one interpolated value: with these, one alert block stays well
# under the 4096 limit even when every character must be escaped.
NAME_CLIP = 80
SUMMARY_CLIP = 160
MESSAGE_CLIP = 400
REASON_CLIP = 160
MAX_REASONS = 8


@dataclass(frozen=True)
class OutMessage:
    """One Telegram message to send: HTML text, whether silent, and inline buttons."""

    text: str
    silent: bool = False
    buttons: tuple[tuple[tuple[str, str], ...], ...] = ()  # rows of (label, callback data)

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "silent": self.silent,
                "buttons": [[list(button) for button in row] for row in self.buttons]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutMessage:
        return cls(text=data["text"], silent=bool(data.get("silent")),
                   buttons=tuple(tuple((b[0], b[1]) for b in row) for row in data.get("buttons", ())))


# --- small formatters ------------------------------------------------------------------------

def esc(value: Any, clip: int = NAME_CLIP) -> str:
    """Clip then escape ``value`` for HTML parse mode.

    >>> esc("Pasar <Baru> & Co")
    'Pasar &lt;Baru&gt; &amp; Co'
    >>> esc("x" * 10, clip=4)
    'xxx…'
    """
    text = "" if value is None else str(value)
    if len(text) > clip:
        text = text[: clip - 1] + "…"
    return html.escape(text, quote=True)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, Telegram's unit (an emoji may count twice)."""
    return len(text.encode("utf-16-le")) // 2


def visible_len(text: str) -> int:
    """Length of an HTML message as Telegram limits it: after entity parsing, so tags do not
    count and ``&amp;`` counts as one character.

    >>> visible_len('<b>Rp 1.000</b> &amp; <a href="https://x">dasbor</a>')
    17
    """
    return utf16_len(html.unescape(_TAG.sub("", text)))


def rupiah(value: float | None, unit: str | None = None) -> str:
    """``Rp 52.000/kg``; a missing value reads as a dash.

    >>> rupiah(52000, "kg"), rupiah(12500.4), rupiah(None, "kg")
    ('Rp 52.000/kg', 'Rp 12.500', '–')
    """
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    return format_rupiah(value) + (f"/{unit}" if unit else "")


def percent_change(price: float | None, level: float | None) -> str | None:
    """Signed change with an Indonesian decimal comma, or None when there is no usual level.

    >>> percent_change(387500, 60000), percent_change(57000, 60000), percent_change(1, None)
    ('+545,8%', '-5,0%', None)
    """
    if not isinstance(price, (int, float)) or not isinstance(level, (int, float)) or level <= 0:
        return None
    change = (price / level - 1.0) * 100.0
    return f"{change:+.1f}%".replace(".", ",")


def duration_text(seconds: float | None) -> str:
    """How long an alert lasted, in Indonesian.

    >>> duration_text(8100), duration_text(45), duration_text(3 * 86400 + 3600), duration_text(None)
    ('2 jam 15 menit', '45 detik', '3 hari 1 jam', 'tidak diketahui')
    """
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        return "tidak diketahui"
    total = int(round(seconds))
    if total < 60:
        return f"{total} detik"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [(days, "hari"), (hours, "jam"), (minutes, "menit")]
    shown = [f"{n} {word}" for n, word in parts if n][:2]
    return " ".join(shown)


def local_time(ts: float | None, province: Any | None, with_date: bool = True) -> str:
    """Wall-clock time in the province's zone (WIB, WITA or WIT); WIB when unknown.

    >>> local_time(1719800000.0, None)
    '1 Jul 2024 09:13 WIB'
    """
    if not isinstance(ts, (int, float)) or not math.isfinite(ts):
        return "–"
    abbr = getattr(province, "tz_abbr", None) or "WIB"
    if abbr in UTC_OFFSETS:
        zone: Any = timezone(timedelta(hours=UTC_OFFSETS[abbr]))
    else:
        try:
            zone = ZoneInfo(getattr(province, "timezone", "") or "Asia/Jakarta")
        except (ZoneInfoNotFoundError, ValueError):
            zone, abbr = timezone(timedelta(hours=7)), "WIB"
    moment = datetime.fromtimestamp(ts, zone)
    clock = f"{moment:%H:%M} {abbr}"
    if not with_date:
        return clock
    return f"{moment.day} {MONTHS[moment.month - 1]} {moment.year} {clock}"


# What the ceiling detector compares with, by the catalog's ``ceiling_kind``: a HET is a legal
# cap, a HAP only the government's reference price, and a reader must not confuse them.
REFERENCE_NAMES = {"HET": "HET (harga eceran tertinggi)", "HAP": "HAP (harga acuan penjualan)"}


def dashboard_link(public_url: str, alert: dict) -> str:
    """A link that opens the dashboard on the alert's series.

    The selection is in the fragment, the form the page writes itself (static/js/selection.js),
    so the link and the page cannot disagree; the page also reads the query form of older links.
    """
    if not public_url:
        return ""
    fields = {name: alert.get(name) for name in ("commodity", "province", "market")}
    selection = urlencode({name: value for name, value in fields.items() if value})
    url = f"{public_url.rstrip('/')}/" + (f"#{selection}" if selection else "")
    return f'<a href="{html.escape(url, quote=True)}">Buka dasbor</a>'


def headline(alert: dict) -> str:
    """The alert's text (escaped): its rendered ``message``, else its summary or rule name."""
    message = alert.get("message")
    if isinstance(message, str) and message.strip():
        return esc(message, MESSAGE_CLIP)
    return esc(alert.get("summary") or alert.get("rule") or "", SUMMARY_CLIP)


# --- names from the catalog ------------------------------------------------------------------

class Names:
    """Display names of an alert's commodity, market and province, falling back to ids."""

    def __init__(self, catalog: Any, alert: dict):
        commodity = catalog.commodities.get(alert.get("commodity"))
        market = catalog.markets.get(alert.get("market"))
        self.province = catalog.provinces.get(alert.get("province"))
        self.commodity = commodity.name_id if commodity else alert.get("commodity") or "?"
        self.unit = commodity.unit if commodity else "kg"
        self.market = market.name if market else alert.get("market") or "?"
        self.province_name = self.province.name if self.province else alert.get("province") or ""
        self.reference_kind = getattr(commodity, "ceiling_kind", None)
        self.reference = commodity.ceiling_for(alert.get("province")) if self.reference_kind else None

    def place(self) -> str:
        """``<b>Pasar Agung</b>, Jawa Barat`` (escaped)."""
        tail = f", {esc(self.province_name)}" if self.province_name else ""
        return f"<b>{esc(self.market)}</b>{tail}"


def severity_mark(alert: dict) -> tuple[str, str]:
    severity = str(alert.get("severity") or "")
    return SEVERITIES.get(severity, ("❗", esc(severity.upper() or "ALERT", 20)))


# --- alert blocks ----------------------------------------------------------------------------

def alert_block(alert: dict, catalog: Any, public_url: str) -> str:
    """The full message for one alert event (firing or resolved)."""
    names = Names(catalog, alert)
    summary = headline(alert)
    what = f"<b>{esc(names.commodity)}</b> di {names.place()}"
    if alert.get("state") == "resolved":
        lines = [f"✅ <b>SELESAI</b> · {summary}" if summary else "✅ <b>SELESAI</b>", what]
        lasted = alert.get("duration")
        if lasted is None and isinstance(alert.get("resolved_at"), (int, float)) \
                and isinstance(alert.get("started_at"), (int, float)):
            lasted = alert["resolved_at"] - alert["started_at"]
        lines.append(f"Harga saat selesai <b>{esc(rupiah(alert.get('price'), names.unit))}</b>, "
                     f"berlangsung {duration_text(lasted)}")
        if isinstance(alert.get("fired_price"), (int, float)):
            lines.append(f"Harga saat mulai {esc(rupiah(alert['fired_price'], names.unit))}")
        when = alert.get("resolved_at") if alert.get("resolved_at") is not None else alert.get("ts")
        lines.append(f"🕒 {local_time(when, names.province)}")
    else:
        icon, label = severity_mark(alert)
        lines = [f"{icon} <b>{label}</b> · {summary}" if summary else f"{icon} <b>{label}</b>", what]
        expected = alert.get("expected") or {}
        level = expected.get("level")
        change = percent_change(alert.get("price"), level)
        usual = f" ({change} dari biasanya {esc(rupiah(level))})" if change else ""
        lines.append(f"Harga <b>{esc(rupiah(alert.get('price'), names.unit))}</b>{usual}")
        lines.extend(_detector_lines(alert, names))
        lines.append(f"🕒 {local_time(alert.get('ts'), names.province)}")
    link = dashboard_link(public_url, alert)
    if link:
        lines.append(link)
    return "\n".join(lines)


def _detector_lines(alert: dict, names: Names) -> list[str]:
    detectors = [str(d) for d in alert.get("detectors") or []]
    reasons = alert.get("reasons") or {}
    lines = [f"Detektor: {esc(', '.join(detectors), REASON_CLIP)}"] if detectors else []
    if "ceiling" in detectors and names.reference_kind in REFERENCE_NAMES:
        # Said from the catalog in Indonesian, so a reader knows a cap from a reference price.
        lines.append(f"Di atas {REFERENCE_NAMES[names.reference_kind]} "
                     f"{esc(rupiah(names.reference, names.unit))}")
    ordered = [d for d in detectors if d in reasons] + [d for d in reasons if d not in detectors]
    for name in ordered[:MAX_REASONS]:
        lines.append(f"• {esc(name, 40)}: {esc(reasons[name], REASON_CLIP)}")
    return lines


def digest_line(alert: dict, catalog: Any) -> str:
    """One alert as a single line of a digest."""
    names = Names(catalog, alert)
    what = f"<b>{esc(names.commodity)}</b> · {names.place()}"
    if alert.get("state") == "resolved":
        when = alert.get("resolved_at") if alert.get("resolved_at") is not None else alert.get("ts")
        lasted = alert.get("duration")
        return (f"✅ {what}: kembali <b>{esc(rupiah(alert.get('price'), names.unit))}</b> "
                f"setelah {duration_text(lasted)} · {local_time(when, names.province, False)}")
    icon, _ = severity_mark(alert)
    change = percent_change(alert.get("price"), (alert.get("expected") or {}).get("level"))
    usual = f" ({change})" if change else ""
    return (f"{icon} {what}: <b>{esc(rupiah(alert.get('price'), names.unit))}</b>{usual} · "
            f"{local_time(alert.get('ts'), names.province, False)}")


def digest_header(alerts: list[dict]) -> str:
    firing = [a for a in alerts if a.get("state") != "resolved"]
    counts = []
    for severity, (_, label) in reversed(SEVERITIES.items()):  # the most severe first
        n = sum(1 for a in firing if a.get("severity") == severity)
        if n:
            counts.append(f"{n} {label.lower()}")
    resolved = len(alerts) - len(firing)
    if resolved:
        counts.append(f"{resolved} selesai")
    detail = f" ({', '.join(counts)})" if counts else ""
    return f"📣 <b>{len(alerts)} pemberitahuan harga</b>{detail}"


# --- whole notifications ---------------------------------------------------------------------

def render_notification(alerts: list[dict], catalog: Any, public_url: str, ref: str,
                        limit: int = TELEGRAM_LIMIT) -> list[OutMessage]:
    """The messages for one notification: one alert in full, or several as a digest.

    ``ref`` identifies the notification in the buttons' callback data (at most 64 bytes).
    Only the last message carries the buttons; all are silent when every alert is ``info``.
    """
    if not alerts:
        return []
    if len(alerts) == 1:
        texts = pack([alert_block(alerts[0], catalog, public_url)], limit)
    else:
        link = dashboard_link(public_url, shared_selection(alerts))
        lines = [digest_header(alerts), *(digest_line(a, catalog) for a in alerts)]
        if link:
            lines.append(link)
        texts = pack(lines, limit, sep="\n")
    silent = all(a.get("severity") == "info" for a in alerts)
    buttons = notification_buttons(alerts, ref)
    return [OutMessage(text, silent, buttons if i == len(texts) - 1 else ())
            for i, text in enumerate(texts)]


def shared_selection(alerts: list[dict]) -> dict:
    """What the alerts of a digest have in common, for its dashboard link: the commodity, and
    the province and market when those are shared too."""
    shared: dict = {}
    for name in ("commodity", "province", "market"):
        values = {a.get(name) for a in alerts}
        if len(values) != 1:
            break
        shared[name] = values.pop()
    return shared


def notification_buttons(alerts: list[dict], ref: str) -> tuple[tuple[tuple[str, str], ...], ...]:
    row = [(MUTE_LABEL, f"m:{ref}")]
    if any(a.get("state") != "resolved" for a in alerts):
        row.append((ACK_LABEL, f"a:{ref}"))
    return (tuple(row),)


def pack(blocks: Iterable[str], limit: int = TELEGRAM_LIMIT, sep: str = "\n\n") -> list[str]:
    """Join blocks into as few texts as fit in ``limit``, breaking only between blocks.

    A block longer than the limit (which the clipping above prevents for alert blocks) is
    broken between its lines, never inside one, so a tag opened on a line closes on it.

    >>> pack(["aaa", "bbb", "ccc"], limit=7)
    ['aaa', 'bbb', 'ccc']
    >>> pack(["aa", "bb", "cc"], limit=6, sep="\\n")
    ['aa\\nbb', 'cc']
    """
    texts: list[str] = []
    current = ""
    for block in _fit_blocks(blocks, limit):
        candidate = f"{current}{sep}{block}" if current else block
        if current and visible_len(candidate) > limit:
            texts.append(current)
            current = block
        else:
            current = candidate
    if current:
        texts.append(current)
    return texts


def _fit_blocks(blocks: Iterable[str], limit: int) -> Iterable[str]:
    for block in blocks:
        if visible_len(block) <= limit:
            yield block
            continue
        yield from pack(block.split("\n"), limit, sep="\n") if "\n" in block else [block]


def ack_line(by: str, ts: float, province: Any | None = None) -> str:
    """Appended to an alert message once someone has acknowledged it."""
    return f"\n\n👍 Diakui oleh <b>{esc(by)}</b> · {local_time(ts, province, False)}"
