"""Per-series state of the default stack: the detectors over one (commodity, market) history.

Kept in one plain object so the engine can checkpoint a series on its own (encode it (detectors/state.py) into
``pw:state:series``) without touching the thousands of series a batch did not see.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from detectors.alps import ALPS
from detectors.anomaly import AnomalyScore
from base.failures import describe_error
from detectors.forecast import ForecastResidual
from detectors.forecast_horizons import HorizonForecast
from detectors.iqr import IQRFences
from detectors.ipa import IPA
from detectors.stale import StaleFeed
from detectors.zscore import RollingZScore


@dataclass
class SeriesState:
    zscore: RollingZScore
    iqr: IQRFences
    forecast: ForecastResidual
    stale: StaleFeed
    # General anomaly score (any value, NAB-tested); reported, never a reason to quarantine.
    # The stack feeds it every tick itself (learn_one, or observe when quarantined).
    anomaly: AnomalyScore = field(default_factory=AnomalyScore)
    # Food-price indicators (WFP ALPS, FAO IPA): a class per tick, for rules and dashboards.
    alps: ALPS = field(default_factory=ALPS)
    ipa: IPA = field(default_factory=IPA)
    # Forecasts 1-28 ticks ahead with conformal intervals and breach odds (reporting only).
    horizons: HorizonForecast = field(default_factory=HorizonForecast)
    # Quarantined ticks in a row that agree with each other: a possible real level shift.
    held: list[dict] = field(default_factory=list)
    # Last feed health reported by the sweep ("ok" or "stale").
    health: str = "ok"

    def temporal(self) -> tuple[RollingZScore, IQRFences, ForecastResidual]:
        return self.zscore, self.iqr, self.forecast

    def __setstate__(self, state: dict) -> None:
        # Checkpoints written before a detector was added lack it: start that one fresh.
        self.__dict__.update(state)
        for name, factory in (("anomaly", AnomalyScore), ("alps", ALPS), ("ipa", IPA),
                              ("horizons", HorizonForecast)):
            if name not in state:
                setattr(self, name, factory())

    def learn_one(self, x: dict, errors: dict[str, str] | None = None) -> None:
        """Every detector learns ``x``; one that raises is skipped and named in ``errors``
        (type and message), so it cannot keep the others from learning."""
        # The price detectors work on log-price; only non-price series (NAB) reach 0 or below.
        if x["price"] > 0.0:
            learners: tuple = (self.zscore, self.forecast, self.alps, self.ipa, self.iqr, self.horizons)
        else:
            learners = (self.iqr,)
        for detector in learners:
            try:
                detector.learn_one(x)
            except Exception as exc:  # noqa: BLE001 - contained: see DetectorStack.process
                if errors is None:
                    raise
                errors.setdefault(detector.name, describe_error(exc))

    def expected(self) -> dict | None:
        """The band a next price is judged against: the forecast's, else the IQR fences'."""
        return self.forecast.expected() or self.iqr.expected()

    def hold(self, x: dict, tolerance: float) -> list[dict]:
        """Add a quarantined tick to the run of held ticks and return the run.

        The run restarts when the tick differs from the previous held one by more than
        ``tolerance`` in log-price: isolated entry errors do not line up, a new price level
        (or a steady local move) does.
        """
        if self.held and not self.agrees(x, tolerance):
            self.held.clear()
        self.held.append(x)
        return self.held

    def agrees(self, x: dict, tolerance: float) -> bool:
        """Whether a tick is within ``tolerance`` in log-price of the last held tick."""
        if x["price"] <= 0.0:
            return False
        return abs(math.log(x["price"] / self.held[-1]["price"])) <= tolerance
