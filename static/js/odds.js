// The odds panel under the chart's heading: how likely the selected series' price is to pass its
// HAP/HET, or to rise 10% or more, within 14 reporting days, and the forecast at 1, 7, 14 and 28
// reporting days with its 80% interval, marked "last price" where no model beat the last price
// (the point then *is* the last price). Both come from the GET /api/v1/forecast body the chart
// already reads. describeOdds is DOM-free (unit-tested with node); renderOdds draws its result.

import { fill, h } from "./dom.js";
import { formatAmount, formatPrice } from "./i18n.js";

export const HORIZONS = [1, 7, 14, 28];
const LAST_PRICE = "last price"; // the API's point_source where no model beat the last price

/**
 * A probability as a whole percentage. The odds come from a window of recent residuals, so an
 * empirical 0 or 1 is "below 1%" / "above 99%", not a certainty.
 */
export function chanceText(p) {
  if (p == null || !Number.isFinite(p)) return null;
  const percent = Math.round(p * 100);
  if (percent < 1) return "<1%";
  if (percent > 99) return ">99%";
  return `${percent}%`;
}

/**
 * What the panel says, as plain data. body: the forecast body (undefined while it has not been
 * read, null when the server holds no state for the series yet). Without a body the HAP/HET is
 * named from the references (ceiling: {value, kind}) or the catalog (ceilingKind: "HAP" | "HET"
 * | null); the body names it whenever the commodity has one.
 */
export function describeOdds(body, { i18n, ceiling = null, ceilingKind = null }) {
  if (body === undefined) return { state: "pending" };
  const odds = body?.odds || {};
  const days = odds.horizon ?? 14;
  const reference = odds.reference != null ? { value: odds.reference, kind: odds.reference_kind }
    : body ? null : ceiling || (ceilingKind ? { value: null, kind: ceilingKind } : null);
  const notYet = i18n.t("odds.notYet");
  const chance = (key, p, label) => ({ key, p: p ?? null, label, text: chanceText(p) ?? notYet, known: p != null });
  const chances = [
    reference
      ? chance("above", odds.p_above_reference, i18n.t("odds.above", {
        kind: i18n.referenceName("ceiling", reference.kind), level: reference.value == null ? "" : formatPrice(reference.value),
      }).trim())
      : { key: "above", p: null, label: i18n.referenceName("ceiling"), text: i18n.t("reference.unknown.ceiling"), known: false },
    chance("rise", odds.p_rise_10, i18n.t("odds.rise")),
  ];
  const warm = chances.some((c) => c.known);
  const made = new Map((body?.forecasts || []).map((f) => [f.h, f]));
  const horizons = HORIZONS.map((days) => {
    const f = made.get(days);
    if (!f || f.point == null) return { h: days, point: i18n.t("odds.notYetShort"), interval: "–", source: null, sourceText: "–" };
    const last = f.point_source === LAST_PRICE;
    return {
      h: days,
      point: formatPrice(f.point),
      interval: `${formatAmount(f.lo80)}–${formatAmount(f.hi80)}`,
      source: f.point_source,
      sourceText: last ? i18n.t("odds.source.last") + "*" : i18n.t("odds.source.model"),
    };
  });
  return {
    state: warm ? "warm" : "cold",
    title: i18n.t("odds.title", { days }),
    chances,
    // The recalibration was fitted on daily reports; before any odd there is nothing to caveat.
    caveat: warm && odds.reported_daily === false ? i18n.t("odds.caveat") : null,
    horizons,
    anyForecast: horizons.some((row) => row.source !== null),
    lastPriceNote: horizons.some((row) => row.source === LAST_PRICE) ? "* " + i18n.t("odds.lastNote") : null,
  };
}

const drawn = new WeakMap(); // panel element -> the view it shows (JSON)

/**
 * Draws describeOdds' view into the panel element (hidden while pending). The forecast is read
 * every few seconds while prices arrive; an unchanged view leaves the panel's nodes alone.
 */
export function renderOdds(el, view, i18n) {
  const json = JSON.stringify([view, i18n.lang]);
  if (drawn.get(el) === json) return;
  drawn.set(el, json);
  el.dataset.state = view.state;
  el.hidden = view.state === "pending";
  if (el.hidden) return;
  fill(el,
    h("div", { class: "odds-chances" },
      h("h3", { id: el.id + "-title" }, view.title),
      h("ul", {}, view.chances.map((c) => h("li", {
        "data-testid": "odds-" + c.key, class: c.known ? "known" : "unknown", dataset: { p: c.p == null ? "" : String(c.p) },
      }, h("span", { class: "odds-label" }, c.label), " ", h("b", { class: "odds-value" }, c.text))))),
    view.caveat ? h("p", { class: "odds-caveat", "data-testid": "odds-caveat", role: "note" },
      h("span", { "aria-hidden": "true" }, "⚠ "), view.caveat) : null,
    horizonTable(view, i18n),
    view.lastPriceNote ? h("p", { class: "odds-note muted", "data-testid": "odds-last-note" }, view.lastPriceNote) : null,
  );
}

/** The forecast per horizon, a column each; before any has one, a line that says so. */
function horizonTable(view, i18n) {
  if (!view.anyForecast) {
    return h("p", { class: "odds-forecast-none", "data-testid": "odds-horizons" },
      h("b", {}, i18n.t("odds.forecast") + ": "), i18n.t("odds.notYet"));
  }
  const row = (label, testid, text, extra = () => ({})) => h("tr", {}, h("th", { scope: "row" }, label),
    view.horizons.map((r) => h("td", { class: "num", "data-testid": testid, dataset: { h: r.h }, ...extra(r) }, text(r))));
  return h("table", { class: "odds-horizons", "data-testid": "odds-horizons", "aria-label": i18n.t("odds.forecast") },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, i18n.t("odds.horizon")),
      view.horizons.map((r) => h("th", { scope: "col", class: "num" }, String(r.h))))),
    h("tbody", {},
      row(i18n.t("odds.point"), "forecast-point", (r) => r.point),
      row(i18n.t("odds.interval"), "forecast-interval", (r) => r.interval),
      row(i18n.t("odds.source"), "forecast-source", (r) => r.sourceText, (r) => ({
        class: "num source" + (r.source === LAST_PRICE ? " last" : ""), dataset: { h: r.h, source: r.source ?? "" },
      }))));
}
