// The live price chart of one series (uPlot): price, the HAP/HET and the chosen reference as
// horizontal lines, the detectors' adaptive level and band (which answer "is today's tick
// odd?", not "how high is the price?"), and markers only where a person should look: an alert
// raised or resolved, a quarantined tick, a change in the set of detectors firing. Hovering a
// tick (or its marker) says which detectors fired and why.

import { marketDeviation, paintDeviation } from "./deviation.js";
import { fill, h, setText } from "./dom.js";
import { formatAmount, formatPrice } from "./i18n.js";
import { priceRange } from "./scale.js";
import { seriesKey } from "./store.js";

const COLOURS = {
  price: "#1f4e8c",
  level: "#5b6b80",
  band: "rgba(91, 140, 210, 0.16)",
  bandEdge: "rgba(91, 107, 128, 0.45)",
  grid: "#e9edf2",
  axis: "#4a5668",
  ceiling: "#c62828",
  reference: "#7a4fb3",
  forecast: "#1f8c6e",
  forecastBand: "rgba(31, 140, 110, 0.14)",
};
// Marker glyph precedence when a tick is several things at once.
const KINDS = ["alert", "resolved", "quarantined", "change"];

function sameSet(a, b) {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((name) => set.has(name));
}

function plotOptions(chart, width, height) {
  const uPlot = globalThis.uPlot;
  const zone = chart.series.zone;
  return {
    width,
    height,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), zone.timezone),
    legend: { show: false },
    cursor: { y: false, points: { size: 9 }, drag: { x: true, y: false } },
    scales: {
      x: { time: true },
      // Prices and lines in full, the forecast's interval cut where it would flatten them.
      y: { range: (u, dataMin, dataMax) => (chart.range ? [chart.range.min, chart.range.max] : [dataMin, dataMax]) },
    },
    series: [
      {},
      { label: "price", stroke: COLOURS.price, width: 2, points: { size: 4, fill: COLOURS.price } },
      { label: "level", stroke: COLOURS.level, width: 1.5, dash: [6, 4], points: { show: false } },
      { label: "lo", stroke: COLOURS.bandEdge, width: 1, points: { show: false } },
      { label: "hi", stroke: COLOURS.bandEdge, width: 1, points: { show: false } },
      { label: "ceiling", stroke: COLOURS.ceiling, width: 1.5, dash: [2, 3], points: { show: false } },
      { label: "reference", stroke: COLOURS.reference, width: 1.5, dash: [10, 4], points: { show: false } },
      { label: "forecast", stroke: COLOURS.forecast, width: 2, dash: [4, 3], points: { show: false } },
      { label: "forecast lo", stroke: COLOURS.forecastBand, width: 1, points: { show: false } },
      { label: "forecast hi", stroke: COLOURS.forecastBand, width: 1, points: { show: false } },
    ],
    bands: [{ series: [4, 3], fill: COLOURS.band }, { series: [9, 8], fill: COLOURS.forecastBand }],
    axes: [
      {
        stroke: COLOURS.axis,
        grid: { stroke: COLOURS.grid },
        ticks: { stroke: COLOURS.grid },
        values: (u, splits, axisIndex, space, increment) => chart.timeLabels(splits, increment),
        size: 44,
      },
      {
        stroke: COLOURS.axis,
        grid: { stroke: COLOURS.grid },
        ticks: { stroke: COLOURS.grid },
        values: (u, splits) => splits.map((v) => formatAmount(v)),
        size: 76,
      },
    ],
    hooks: {
      draw: [(u) => chart.placeMarkers(u)],
      setCursor: [(u) => chart.followCursor(u)],
    },
  };
}

export class PriceChart {
  /** container holds .chart-plot, .chart-message and the tooltip; it carries data-points. */
  constructor(container, i18n) {
    this.container = container;
    this.plotEl = container.querySelector(".chart-plot");
    this.messageEl = container.querySelector(".chart-message");
    this.tip = container.querySelector(".chart-tip");
    this.i18n = i18n;
    this.series = null;
    this.plot = null;
    this.points = [];
    this.alertMarks = new Map(); // tick ts -> ["alert" | "resolved"]
    this.lines = { ceiling: null, reference: null };
    this.range = null; // the price axis's {min, max, clipped} (static/js/scale.js)
    this.markers = new Map(); // point id -> element
    this.pinned = null; // id of the point whose marker is hovered
    new ResizeObserver(() => this.resize()).observe(this.plotEl);
  }

  setLanguage(i18n) {
    this.i18n = i18n;
    this.show(this.series);
  }

  /** series: {commodity, market, zone: {timezone, abbr}} or null for none selected. */
  show(series) {
    this.series = series;
    if (this.plot) this.plot.destroy();
    this.plot = null;
    this.markers.clear();
    this.points = [];
    this.hideTip();
    this.container.dataset.points = "0";
    this.container.dataset.series = series ? `${series.commodity}/${series.market}` : "";
    if (series) {
      const { width, height } = this.size();
      this.plot = new globalThis.uPlot(plotOptions(this, width, height), Array.from({ length: 10 }, () => []), this.plotEl);
    }
    this.showMessage();
  }

  /**
   * Redraws from a SeriesBuffer. alertMarks: tick ts -> alert transitions at that tick;
   * lines: {ceiling, reference}, each {value, kind} or null, drawn flat across the chart;
   * forecast: steps ({ts, level, lo, hi}) after the last tick, drawn ahead of it with their
   * interval, starting from the last price.
   */
  setData(buffer, alertMarks, lines = { ceiling: null, reference: null }, forecast = []) {
    if (!this.plot) return;
    this.points = buffer.points;
    this.alertMarks = alertMarks;
    this.lines = lines;
    const columns = buffer.columns();
    const last = this.points[this.points.length - 1];
    const ahead = last ? forecast.filter((step) => step.ts > last.ts) : [];
    for (const column of columns) column.push(...ahead.map(() => null));
    ahead.forEach((step, i) => { columns[0][this.points.length + i] = step.ts; });
    const flat = (line) => columns[0].map(() => (line ? line.value : null));
    const projected = (name) => columns[0].map((ts, i) =>
      i === this.points.length - 1 && ahead.length ? last.price : i >= this.points.length ? ahead[i - this.points.length][name] : null);
    columns.push(flat(lines.ceiling), flat(lines.reference), projected("level"), projected("lo"), projected("hi"));
    this.range = priceRange(columns.slice(1, 8), columns.slice(8));
    this.plot.setData(columns);
    this.container.dataset.forecast = String(ahead.length);
    this.container.dataset.bandClipped = String(Boolean(this.range && this.range.clipped));
    this.container.dataset.ceiling = lines.ceiling ? String(lines.ceiling.value) : "";
    this.container.dataset.reference = lines.reference ? String(Math.round(lines.reference.value)) : "";
    this.container.dataset.points = String(buffer.length);
    this.showMessage();
    if (this.pinned != null || this.plot.cursor.idx != null) this.followCursor(this.plot);
  }

  showMessage() {
    const text = !this.series ? this.i18n.t("chart.choose") : this.points.length === 0 ? this.i18n.t("chart.empty") : "";
    setText(this.messageEl, text);
    this.messageEl.hidden = !text;
  }

  size() {
    return { width: Math.max(200, this.plotEl.clientWidth), height: Math.max(160, this.plotEl.clientHeight) };
  }

  resize() {
    if (this.plot) this.plot.setSize(this.size());
  }

  timeLabels(splits, increment) {
    const zone = this.series.zone.timezone;
    const toDate = (v) => new Date(v * 1000);
    if (increment >= 28 * 86400) return splits.map((v) => this.i18n.dateFormat(zone, "month").format(toDate(v)));
    const day = this.i18n.dateFormat(zone, "date");
    if (increment >= 86400) return splits.map((v) => day.format(toDate(v)));
    const time = this.i18n.dateFormat(zone, "time");
    let previousDay = null;
    return splits.map((v) => {
      const d = day.format(toDate(v));
      const label = d === previousDay ? time.format(toDate(v)) : time.format(toDate(v)) + "\n" + d;
      previousDay = d;
      return label;
    });
  }

  /** What is worth a marker at points[index]; a detector firing tick after tick is not. */
  kindsOf(index) {
    const point = this.points[index];
    const kinds = [...(this.alertMarks.get(point.ts) || [])];
    const verdict = point.verdict || {};
    if (verdict.quarantined) kinds.push("quarantined");
    if (point.verdict && !verdict.quarantined) {
      // Against the previous tick that was learned from: a quarantined tick has its own marker.
      let before = index - 1;
      while (before >= 0 && (!this.points[before].verdict || this.points[before].verdict.quarantined)) before -= 1;
      if (before >= 0 && !sameSet(this.points[before].verdict.fired || [], verdict.fired || [])) kinds.push("change");
    }
    return kinds;
  }

  /** Markers are elements over the canvas so they can be hovered (and found by tests). */
  placeMarkers(u) {
    const keep = new Set();
    const { min, max } = u.scales.x;
    for (let i = 0; i < this.points.length; i++) {
      const point = this.points[i];
      if (point.ts < min || point.ts > max) continue;
      const kinds = this.kindsOf(i);
      if (kinds.length === 0) continue;
      const id = point.id ?? String(point.ts);
      let el = this.markers.get(id);
      if (!el) {
        el = h("span", { "data-testid": "chart-marker" });
        el.addEventListener("mouseenter", () => { this.pinned = el.dataset.id; this.followCursor(u); });
        el.addEventListener("mouseleave", () => { this.pinned = null; this.followCursor(u); });
        u.over.append(el);
        this.markers.set(id, el);
      }
      el.className = "marker marker-" + KINDS.find((k) => kinds.includes(k));
      el.dataset.kinds = kinds.join(" ");
      el.dataset.id = id;
      el.style.left = u.valToPos(point.ts, "x") + "px";
      el.style.top = u.valToPos(point.price, "y") + "px";
      keep.add(id);
    }
    for (const [id, el] of this.markers) {
      if (!keep.has(id)) { el.remove(); this.markers.delete(id); }
    }
    this.container.dataset.markers = String(keep.size);
  }

  followCursor(u) {
    // Points shift as the buffer slides, so a hovered marker is remembered by id, not index.
    const pinned = this.pinned == null ? -1 : this.points.findIndex((p) => (p.id ?? String(p.ts)) === this.pinned);
    const index = pinned >= 0 ? pinned : u.cursor.idx;
    if (index == null || !this.points[index]) this.hideTip();
    else this.showTip(index);
  }

  showTip(index) {
    const point = this.points[index];
    if (!point || !this.plot) return;
    const i18n = this.i18n;
    const verdict = point.verdict || {};
    const expected = verdict.expected;
    const kinds = this.kindsOf(index);
    const fired = verdict.fired || [];
    fill(this.tip,
      h("div", { class: "tip-time" }, i18n.time(point.ts, this.series.zone)),
      h("div", { class: "tip-price" }, formatPrice(point.price)),
      expected ? h("div", { class: "muted" }, i18n.t("tip.band", {
        level: formatPrice(expected.level), lo: formatPrice(expected.lo), hi: formatPrice(expected.hi),
      })) : null,
      kinds.includes("alert") ? h("div", { class: "tip-flag tip-alert" }, i18n.t("tip.alert")) : null,
      kinds.includes("resolved") ? h("div", { class: "tip-flag tip-resolved" }, i18n.t("tip.resolved")) : null,
      kinds.includes("change") ? h("div", { class: "tip-flag" }, i18n.t("tip.change")) : null,
      verdict.quarantined ? h("div", { class: "tip-flag tip-quarantined" }, i18n.t("tip.quarantined")) : null,
      fired.length
        ? h("div", { class: "tip-fired" }, h("div", {}, i18n.t("tip.fired")),
            h("ul", {}, fired.map((name) => h("li", { "data-detector": name },
              h("b", {}, i18n.detector(name, this.series.ceilingKind)), ": ",
              i18n.reason(name, { price: point.price, score: (verdict.scores || {})[name], expected, classes: verdict.classes,
                ceilingKind: this.series.ceilingKind })))))
        : point.verdict ? h("div", { class: "muted" }, i18n.t("tip.noFire")) : null,
    );
    this.tip.hidden = false;
    const u = this.plot;
    const over = u.over.getBoundingClientRect();
    const box = this.container.getBoundingClientRect();
    const x = over.left - box.left + u.valToPos(point.ts, "x");
    const y = over.top - box.top + u.valToPos(point.price, "y");
    const width = this.tip.offsetWidth, height = this.tip.offsetHeight;
    const left = x + 16 + width > box.width ? x - 16 - width : x + 16;
    this.tip.style.left = Math.max(0, left) + "px";
    const bottom = Math.min(box.height, window.innerHeight - box.top - 4); // the window's edge, when higher
    const lowest = bottom - height;
    // Inside the chart, unless it only fits by rising above the chart's top; never above the window's.
    const top = Math.max(Math.min(0, lowest), Math.min(y - height / 2, lowest));
    this.tip.style.top = Math.max(4 - box.top, top) + "px";
  }

  hideTip() {
    this.tip.hidden = true;
  }
}

/**
 * The chart card's heading: series name, place, latest price and its difference from the chosen
 * reference (named, with its level), a stale-feed badge and the point count.
 * els: elements named chartTitle, chartSubtitle, ...
 */
export function renderSeriesHead(els, { store, catalog, i18n, selection, points, references, reference }) {
  const market = catalog.markets.get(selection.market);
  const latest = market && store.latest.get(seriesKey(selection.commodity, market.id));
  const stale = market && store.health.get(seriesKey(selection.commodity, market.id));
  const deviation = latest ? marketDeviation(latest, references, reference) : null;
  const level = market ? references.ofMarket(market.id, reference) : null;
  const commodity = catalog.commodities.get(selection.commodity);
  const zone = market && catalog.zone(market.province);
  setText(els.chartTitle, market ? `${catalog.commodityName(selection.commodity, i18n.lang)} — ${market.name}` : i18n.t("chart.title"));
  setText(els.chartSubtitle, market
    ? [market.city, catalog.provinceName(market.province), commodity && `Rp/${commodity.unit}`, zone.abbr].filter(Boolean).join(" · ")
    : "");
  setText(els.chartLatest, latest ? formatPrice(latest.price) : "");
  els.chartDeviation.hidden = deviation == null;
  paintDeviation(els.chartDeviation, deviation, i18n);
  els.chartDeviation.dataset.deviation = deviation == null ? "" : deviation.toFixed(4);
  setText(els.chartReference, !latest ? "" : level
    ? i18n.t("reference.against", { name: i18n.referenceName(reference, level.kind), level: formatPrice(level.value) })
    : i18n.t("reference.unknown." + reference));
  els.chartStale.hidden = !stale;
  setText(els.chartStale, stale ? i18n.t("health.stale", { age: i18n.age(stale.age) }) : "");
  setText(els.chartCount, market ? i18n.t("chart.points", { count: points }) : "");
}
