"""Robust statistics over the small windows and panels the detectors keep.

>>> quantile([1.0, 2.0, 3.0, 4.0], 0.25)
1.75
>>> median([5.0, 1.0, 3.0, 100.0])
4.0
>>> center_and_spread([10.0, 11.0, 12.0, 50.0], min_scale=0.5)
(11.5, 1.4826)
"""
from __future__ import annotations

# 1.4826 * MAD estimates the standard deviation of a normal sample, ignoring outliers.
MAD_TO_STD = 1.4826


def quantile(ordered: list[float], q: float) -> float:
    """Linear-interpolation quantile of an already sorted list (numpy's default method)."""
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values) -> float:
    return quantile(sorted(values), 0.5)


def center_and_spread(values: list[float], min_scale: float) -> tuple[float, float]:
    """Median and robust standard deviation (1.4826 * MAD, at least ``min_scale``)."""
    center = median(values)
    mad = median(abs(v - center) for v in values)
    return center, max(MAD_TO_STD * mad, min_scale)
