"""Price ceiling: fires when a price reaches a legal maximum such as the HET.

HET (harga eceran tertinggi) is the government's highest retail price, set for commodities
like rice and cooking oil. The score is simply price / ceiling, so it reads as "share of the
ceiling" on a dashboard; there is nothing to learn.

>>> det = CeilingPrice(14000)
>>> det.score_one({"price": 13500, "ts": 0.0}) < det.threshold
True
>>> tick = {"price": 15000, "ts": 0.0}
>>> score = det.score_one(tick)
>>> score >= det.threshold
True
>>> det.explain(tick, score)
'Rp 15.000 is 7% above the ceiling (HET) Rp 14.000'
>>> CeilingPrice(None).score_one(tick) is None
True
"""
from __future__ import annotations

from detectors.money import format_rupiah


class CeilingPrice:
    name = "ceiling"

    def __init__(self, ceiling: float | None, threshold: float = 1.0):
        if ceiling is not None and ceiling <= 0:
            raise ValueError(f"ceiling must be positive (got {ceiling})")
        self.ceiling = ceiling
        self.threshold = threshold

    def score_one(self, x: dict) -> float | None:
        if self.ceiling is None:
            return None
        return x["price"] / self.ceiling

    def learn_one(self, x: dict) -> None:
        return None

    def explain(self, x: dict, score: float) -> str:
        if self.ceiling is None:
            return "no ceiling"
        excess = score - 1.0
        where = f"{excess:.0%} above" if excess > 0 else "at"
        price, ceiling = format_rupiah(x["price"]), format_rupiah(self.ceiling)
        return f"{price} is {where} the ceiling (HET) {ceiling}"
