"""Message templates of rules: ``str.format`` fields over a fixed set of names, nothing else.

A template names values with ``{price_rp}`` or formats numbers with ``{change_pct}`` /
``{value:.1f}``. Attribute access, indexing and conversions (``{x.__class__}``, ``{x[0]}``,
``{x!r}``) are rejected when the rule file is loaded, and so is a format that does not fit the
value, so a template that loads always renders. A value that is unknown at render time (no
usual level yet, say) renders as ``-``.

Values are those at the event: for a resolution ``price`` is the price at resolution and
``fired_price`` the one at firing, so a resolved message never shows stale values.

>>> t = compile_template("{commodity_name} {price_rp} ({change_pct}), skor {value:.1f}")
>>> t.render({"commodity_name": "Cabai rawit merah", "price_rp": "Rp 90.000", "change_pct": "+50%", "value": 6.04})
'Cabai rawit merah Rp 90.000 (+50%), skor 6.0'
>>> compile_template("{price.__class__}")
Traceback (most recent call last):
...
rules.templates.TemplateError: {price.__class__}: only plain names are allowed, e.g. {price_rp}
>>> compile_template("{price:>999999999}")
Traceback (most recent call last):
...
rules.templates.TemplateError: {price:>999999999}: widths and precisions in a format are at most 64
"""
from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from base.money import format_rupiah
from rules.timewindows import zone

# name -> (kind, meaning); "number" fields accept number formats such as {value:.1f}.
FIELDS: dict[str, tuple[str, str]] = {
    "rule": ("text", "the rule's name"),
    "summary": ("text", "the rule's summary"),
    "state": ("text", "firing or resolved"),
    "transition": ("text", "fired, escalated, deescalated, unmuted, repeated, confirmed or resolved"),
    "severity": ("text", "info, warning or critical"),
    "level": ("text", "the ladder rung's name (the severity for a rule without a ladder)"),
    "previous_level": ("text", "the rung before an escalation or de-escalation"),
    "commodity": ("text", "commodity id"),
    "commodity_name": ("text", "commodity name (Indonesian)"),
    "market": ("text", "market id"),
    "market_name": ("text", "market name"),
    "province": ("text", "province code"),
    "province_name": ("text", "province name"),
    "unit": ("text", "the commodity's unit, e.g. kg"),
    "price": ("number", "price at this event (at resolution for a resolution)"),
    "price_rp": ("text", "price as Rp 62.000"),
    "fired_price": ("number", "price when the alert fired"),
    "fired_price_rp": ("text", "price when the alert fired, as Rp 62.000"),
    "peak_price": ("number", "highest price while the alert fired"),
    "peak_price_rp": ("text", "highest price while the alert fired, as Rp 62.000"),
    "expected": ("number", "the series' usual level"),
    "expected_rp": ("text", "the usual level as Rp 62.000"),
    "change": ("number", "price against its usual level (0.3 = 30% above)"),
    "change_pct": ("text", "the change as +30%"),
    "value": ("number", "the ladder's value at this event"),
    "fired_value": ("number", "the ladder's value when the alert fired"),
    "peak_value": ("number", "the highest ladder value while the alert fired"),
    "age": ("number", "seconds since the series' last tick (feed-health rules)"),
    "detectors": ("text", "detectors that fired, comma-separated"),
    "reasons": ("text", "the detectors' reasons, separated by '; '"),
    "started": ("text", "local time the alert started, e.g. 1 Jul 2024 09:13 WIB"),
    "at": ("text", "local time of this event"),
    "duration": ("text", "how long the alert has lasted, e.g. 3 hari 2 jam"),
}
_SAMPLE = {"text": "teks", "number": 1234.5}
# {price:>999999999} is a valid format: a gigabyte per message, allocated at load and each send.
MAX_WIDTH = 64
MAX_SOURCE = 2000
MAX_SPEC = 20
_DIGITS = re.compile(r"\d{1,20}")


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Template:
    source: str
    parts: tuple[tuple[str, str | None, str], ...]  # (literal, field or None, format spec)

    def render(self, values: dict[str, Any]) -> str:
        out = []
        for literal, name, spec in self.parts:
            out.append(literal)
            if name is None:
                continue
            value = values.get(name)
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                out.append("-")
                continue
            try:
                out.append(format(value, spec))
            except (ValueError, TypeError):
                out.append(str(value))
        return "".join(out)


def compile_template(source: str) -> Template:
    if not isinstance(source, str):
        raise TemplateError("a template is text")
    if len(source) > MAX_SOURCE:
        raise TemplateError(f"a template is at most {MAX_SOURCE} characters (a Telegram message holds 4096)")
    try:
        parsed = list(string.Formatter().parse(source))
    except ValueError as exc:
        raise TemplateError(f"{exc} (write {{{{ and }}}} for literal braces)") from None
    parts: list[tuple[str, str | None, str]] = []
    for literal, name, spec, conversion in parsed:
        if name is None:
            parts.append((literal, None, ""))
            continue
        shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if not name.isidentifier():
            raise TemplateError(f"{shown}: only plain names are allowed, e.g. {{price_rp}}")
        if conversion:
            raise TemplateError(f"{shown}: conversions (!r, !s) are not allowed")
        if name not in FIELDS:
            raise TemplateError(f"{shown}: unknown name {name!r}; known: {', '.join(sorted(FIELDS))}")
        if "{" in (spec or ""):
            raise TemplateError(f"{shown}: a format cannot contain fields")
        if len(spec or "") > MAX_SPEC or any(int(n) > MAX_WIDTH for n in _DIGITS.findall(spec or "")):
            raise TemplateError(f"{_short(shown)}: widths and precisions in a format are at most {MAX_WIDTH}")
        try:
            format(_SAMPLE[FIELDS[name][0]], spec or "")
        except (ValueError, TypeError) as exc:
            raise TemplateError(f"{shown}: format {spec!r} does not fit a {FIELDS[name][0]}: {exc}") from None
        parts.append((literal, name, spec or ""))
    return Template(source, tuple(parts))


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:60] + "...}"


def rupiah(value: Any) -> str | None:
    return format_rupiah(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def percent(change: Any) -> str | None:
    """Signed whole percent.

    >>> percent(0.256), percent(-0.1), percent(None)
    ('+26%', '-10%', None)
    """
    if not isinstance(change, (int, float)) or not math.isfinite(change):
        return None
    return f"{change * 100:+.0f}%"


def local_time(ts: Any, tz_name: str, abbr: str) -> str | None:
    """Wall-clock time in a province's zone.

    >>> local_time(1719800000.0, "Asia/Jakarta", "WIB")
    '1 Jul 2024 09:13 WIB'
    """
    if not isinstance(ts, (int, float)) or not math.isfinite(ts):
        return None
    try:
        local = datetime.fromtimestamp(ts, zone(tz_name))
    except ValueError:
        local = datetime.fromtimestamp(ts, timezone(timedelta(hours=7)))
    return f"{local.day} {local:%b %Y %H:%M} {abbr}"


def duration_text(seconds: Any) -> str | None:
    """Indonesian, two largest units.

    >>> duration_text(3 * 86400 + 7200), duration_text(90), duration_text(30)
    ('3 hari 2 jam', '1 menit', '30 detik')
    """
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        return None
    total = int(seconds)
    if total < 60:
        return f"{total} detik"
    units = [(86400, "hari"), (3600, "jam"), (60, "menit")]
    parts = []
    for size, name in units:
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count} {name}")
    return " ".join(parts[:2])
