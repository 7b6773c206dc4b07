"""Rupiah formatting for human-readable detector reasons.

>>> format_rupiah(60000)
'Rp 60.000'
>>> format_rupiah(387500.4)
'Rp 387.500'
>>> format_rupiah(950)
'Rp 950'
>>> format_rupiah(-1234567)
'-Rp 1.234.567'
"""
from __future__ import annotations

import math


def format_rupiah(value: float) -> str:
    """Whole rupiah with dots as thousands separators, the Indonesian way (``Rp 60.000``)."""
    if not math.isfinite(value):
        return f"Rp {value}"
    rounded = round(value)
    sign = "-" if rounded < 0 else ""
    return f"{sign}Rp {abs(rounded):,}".replace(",", ".")
