"""Detector state in the checkpoint codec (base/state.py): what a detector may put in a checkpoint.

Importing this module registers every detector class the engine checkpoints per series and per
commodity panel, the whole stack (for tests and tools) and the two River classes of the
forecast's model.

>>> from detectors.stack import DetectorStack
>>> stack = DetectorStack()
>>> for day in range(10):
...     _ = stack.process({"commodity": "cabai", "market": "pasar-a", "price": 50000.0 + 500 * (day % 3),
...                        "ts": day * 86400.0})
>>> blob = encode_state(stack.series_state(("cabai", "pasar-a")))
>>> blob[:8]
b'{"v":1,"'
>>> restored = decode_state(blob)
>>> tick = {"commodity": "cabai", "market": "pasar-a", "price": 90000.0, "ts": 10 * 86400.0}
>>> restored.forecast.score_one(tick) == stack.series_state(("cabai", "pasar-a")).forecast.score_one(tick)
True
"""
from __future__ import annotations

from river.time_series.holt_winters import AdditiveLevel, HoltWinters

from base.state import StateError, decode_state, encode_state, register
from detectors.alps import ALPS, RecursiveLeastSquares
from detectors.anomaly import AnomalyScore, DailyProfile, SlidingExtreme
from detectors.ceiling import CeilingPrice, Reference
from detectors.crossmarket import CrossMarket
from detectors.forecast import ForecastResidual
from detectors.forecast_horizons import HorizonForecast
from detectors.ipa import IPA
from detectors.iqr import IQRFences
from detectors.likelihood import AnomalyLikelihood
from detectors.series import SeriesState
from detectors.stack import DetectorStack, StackConfig
from detectors.stale import StaleFeed
from detectors.surge import PanelSurge
from detectors.zscore import RollingZScore

__all__ = ["StateError", "decode_state", "encode_state", "register"]

# The detector state a checkpoint holds (DetectorStack.series_state / panel_state), the whole
# stack for tests and tools, and the two River classes of the forecast's model.
for _cls in (SeriesState, RollingZScore, IQRFences, ForecastResidual, StaleFeed, AnomalyScore,
             SlidingExtreme, DailyProfile, AnomalyLikelihood, ALPS, RecursiveLeastSquares, IPA,
             CrossMarket, CeilingPrice, Reference, DetectorStack, StackConfig, HoltWinters, AdditiveLevel,
             HorizonForecast, PanelSurge):
    register(_cls)
