// The selected series' forecast (GET /api/v1/forecast): read at most once per interval while
// its prices arrive, and one body feeds both the chart's forecast line and the odds panel.

import { fetchForecast } from "./api.js";
import { Later } from "./later.js";

export const FORECAST_HORIZON = 28; // reporting days ahead: the longest calibrated horizon

/**
 * The chart's forecast steps ({ts, level, lo, hi, source}): the horizons' calibrated forecasts
 * with their 95% intervals (the last price where no model beat it), never the anomaly
 * detector's own `steps`, which lose to the last price.
 */
export function chartSteps(body) {
  return (body?.forecasts || []).filter((f) => f.ts != null && f.point != null)
    .map((f) => ({ ts: f.ts, level: f.point, lo: f.lo95, hi: f.hi95, source: f.point_source }));
}

export class SeriesForecast {
  /**
   * selected(): {commodity, market} of the selected series, or null; onRead(): called when a
   * body for the selected series has arrived; every: ms that soon() waits.
   */
  constructor(selected, onRead, every) {
    this.selected = selected;
    this.onRead = onRead;
    this.later = new Later(() => this.read(), every);
    this.reset();
  }

  /** Forgets the previous series' forecast: nothing is shown for the new one until it is read. */
  reset() {
    this.body = undefined; // undefined: not read yet; null: the server holds no state for the series
    this.steps = [];
  }

  /** Reads now (the series changed, its history arrived). */
  now() {
    return this.later.now();
  }

  /** Reads once soon, however many prices ask for it. */
  soon() {
    this.later.soon();
  }

  async read() {
    const series = this.selected();
    if (!series) return;
    const same = (other) => other && other.commodity === series.commodity && other.market === series.market;
    try {
      const body = await fetchForecast(series.commodity, series.market, FORECAST_HORIZON);
      if (!same(this.selected())) return; // the selection moved on while this was read
      this.body = body;
      this.steps = chartSteps(body);
      this.onRead();
    } catch (error) {
      console.warn("pasarwatch: forecast unavailable for", `${series.commodity}/${series.market}`, error);
    }
  }
}
