"""Price ceiling: fires when a price reaches a government price, and says which kind it is.

Two kinds exist, and an alert must not confuse them:

* HET (harga eceran tertinggi): the highest legal retail price, set for rice and MinyaKita.
  Selling above it breaks a regulation.
* HAP (harga acuan penjualan): the government's reference consumer price, set for chilli,
  shallots, sugar and others. It is what the government considers fair, not a legal cap.

The catalog (rules/catalog/commodities.yaml, ``ceiling_kind``) says which one a commodity has;
the stack is given each as a ``Reference``. A bare number is taken as a HET, the stricter word,
for callers that know no kind. The score is simply price / reference, so it reads as "share of
the reference" on a dashboard; there is nothing to learn.

>>> det = CeilingPrice(Reference(14000, "HET"))
>>> det.score_one({"price": 13500, "ts": 0.0}) < det.threshold
True
>>> tick = {"price": 15000, "ts": 0.0}
>>> score = det.score_one(tick)
>>> score >= det.threshold
True
>>> det.explain(tick, score)
'Rp 15.000 is 7% above the legal ceiling (HET) Rp 14.000'
>>> chilli = CeilingPrice(Reference(57000, "HAP"))
>>> chilli.explain({"price": 60000, "ts": 0.0}, chilli.score_one({"price": 60000, "ts": 0.0}))
'Rp 60.000 is 5% above the reference price (HAP) Rp 57.000'
>>> CeilingPrice(None).score_one(tick) is None
True
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from base.money import format_rupiah

# What each kind is called in a reason (English, like every detector reason).
KIND_NAMES = {"HET": "legal ceiling (HET)", "HAP": "reference price (HAP)"}


@dataclass(frozen=True)
class Reference:
    """A commodity's government price in rupiah per unit, and its kind (``HET`` or ``HAP``)."""

    value: float
    kind: str = "HET"

    def __post_init__(self) -> None:
        if self.kind not in KIND_NAMES:
            raise ValueError(f"kind must be one of {', '.join(KIND_NAMES)} (got {self.kind!r})")


class CeilingPrice:
    name = "ceiling"

    def __init__(self, ceiling: Reference | float | None, threshold: float = 1.0):
        if ceiling is not None and not isinstance(ceiling, Reference):
            ceiling = Reference(float(ceiling))
        if ceiling is not None and ceiling.value <= 0:
            raise ValueError(f"ceiling must be positive (got {ceiling.value})")
        self.reference = ceiling
        self.ceiling = ceiling.value if ceiling is not None else None
        self.kind = ceiling.kind if ceiling is not None else None
        self.threshold = threshold

    def score_one(self, x: dict) -> float | None:
        if self.ceiling is None:
            return None
        return x["price"] / self.ceiling

    def learn_one(self, x: dict) -> None:
        return None

    def explain(self, x: dict, score: float) -> str:
        if self.ceiling is None or self.kind is None:
            return "no ceiling"
        excess = score - 1.0
        where = f"{excess:.0%} above" if excess > 0 else "at"
        price, ceiling = format_rupiah(x["price"]), format_rupiah(self.ceiling)
        return f"{price} is {where} the {KIND_NAMES[self.kind]} {ceiling}"


def ceilings_of(catalog: Any) -> dict[str | tuple[str, str], Reference]:
    """The references of every commodity of a catalog (base.catalog.Catalog): what the engine,
    the backtest and the rule tools give the DetectorStack as ``ceilings``."""
    return references(catalog.commodities.values())


def references(commodities: Iterable[Any]) -> dict[str | tuple[str, str], Reference]:
    """The ``ceilings`` of a DetectorStack from catalog commodities (base.catalog.Commodity):
    the national reference per commodity id, the regional ones (rice HET zones) per
    ``(commodity id, province code)``, each with the commodity's kind."""
    found: dict[str | tuple[str, str], Reference] = {}
    for commodity in commodities:
        kind = commodity.ceiling_kind or "HET"
        if commodity.ceiling:
            found[commodity.id] = Reference(float(commodity.ceiling), kind)
        for province, value in commodity.ceiling_by_province.items():
            found[(commodity.id, province)] = Reference(float(value), kind)
    return found
