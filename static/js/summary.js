// The summary panel ("Ringkasan"): what is happening now, across every commodity with prices.
// In alert (firing alerts by commodity and province, worst severity first), the biggest movers
// week on week, each commodity's ALPS phase nationally and per province, the state of Badan
// Pangan's draft crisis criterion, and how fresh the data are. Each entry opens its series.
// `summarise` is DOM-free (node tests); `renderSummary` draws it.

import { fetchFiring, fetchLatest, fetchReferences } from "./api.js";
import { median } from "./deviation.js";
import { h } from "./dom.js";

const SEVERITY_RANK = { critical: 3, warning: 2, info: 1 };
export const PHASES = ["normal", "stress", "alert", "crisis"];
const MOVERS = 6;
const ALERTS = 1000;

/** The median ALPS class of some latest price messages (lower middle), or null when none has one. */
export function medianPhase(messages) {
  const ranks = messages
    .map((m) => PHASES.indexOf(m.verdict && m.verdict.classes && m.verdict.classes.alps))
    .filter((rank) => rank >= 0);
  return ranks.length ? PHASES[Math.floor(median(ranks))] : null;
}

/** The criterion's state for one entry of GET /api/v1/references: the most severe level met,
 *  else the longest run under way, else "no". */
export function crisisState(entry) {
  let best = { state: "no" };
  for (const kind of ["ceiling", "avg3m"]) {
    for (const level of (entry.crisis && entry.crisis[kind]) || []) {
      const candidate = { state: level.met ? "met" : level.days > 0 ? "watch" : "no", kind, ...level };
      const rank = (c) => (c.state === "met" ? 2 : c.state === "watch" ? 1 : 0) * 10 + (c.threshold || 0);
      if (rank(candidate) > rank(best) || (rank(candidate) === rank(best) && (candidate.days || 0) > (best.days || 0))) {
        best = candidate;
      }
    }
  }
  return best;
}

/**
 * firing: alert events firing now (every commodity); latest: the latest price message of every
 * series; references: commodity -> body of GET /api/v1/references.
 */
export function summarise({ firing, latest, references }) {
  const any = [...references.values()][0];
  const alerts = new Map();
  for (const alert of firing) {
    const key = alert.commodity + "|" + alert.province;
    const entry = alerts.get(key) || { commodity: alert.commodity, province: alert.province, severity: "info", count: 0, market: alert.market };
    entry.count += 1;
    if ((SEVERITY_RANK[alert.severity] || 0) > (SEVERITY_RANK[entry.severity] || 0)) {
      entry.severity = alert.severity;
      entry.market = alert.market;
    }
    alerts.set(key, entry);
  }
  const movers = [], crisis = [];
  for (const [commodity, body] of references) {
    for (const province of body.provinces || []) {
      const week = province.references && province.references.week;
      if (week && week.value > 0 && province.price) {
        movers.push({ commodity, province: province.province, change: province.price / week.value - 1, price: province.price });
      }
      crisis.push({ commodity, province: province.province, ...crisisState(province) });
    }
  }
  const byCommodity = new Map();
  for (const msg of latest) {
    if (!byCommodity.has(msg.commodity)) byCommodity.set(msg.commodity, []);
    byCommodity.get(msg.commodity).push(msg);
  }
  const alps = [], freshness = [];
  for (const [commodity, messages] of [...byCommodity].sort()) {
    const provinces = new Map();
    for (const msg of messages) {
      if (!provinces.has(msg.province)) provinces.set(msg.province, []);
      provinces.get(msg.province).push(msg);
    }
    alps.push({
      commodity, national: medianPhase(messages),
      provinces: [...provinces].sort().map(([province, list]) => ({ province, phase: medianPhase(list) })),
    });
    freshness.push({ commodity, newest: Math.max(...messages.map((m) => m.ts)), count: messages.length });
  }
  return {
    alerts: [...alerts.values()].sort((a, b) =>
      (SEVERITY_RANK[b.severity] || 0) - (SEVERITY_RANK[a.severity] || 0) || b.count - a.count),
    movers: movers.sort((a, b) => Math.abs(b.change) - Math.abs(a.change)).slice(0, MOVERS),
    alps,
    crisis: crisis.sort((a, b) => ["met", "watch", "no"].indexOf(a.state) - ["met", "watch", "no"].indexOf(b.state)),
    freshness,
    thresholds: (any && any.crisis_thresholds) || [0.075, 0.125],
    days: (any && any.crisis_days) || 15,
  };
}

/**
 * Reads what the summary needs, for every catalog commodity with prices, and summarises it.
 * known: commodity -> references body, reused and updated (the selected commodity's is also
 * kept there by the page).
 */
export async function readSummary(catalog, known) {
  const [firing, latest] = await Promise.all([fetchFiring(ALERTS), fetchLatest()]);
  const commodities = [...new Set(latest.map((m) => m.commodity))].filter((c) => catalog.commodities.has(c));
  for (const commodity of commodities) known.set(commodity, await fetchReferences(commodity));
  for (const commodity of [...known.keys()]) {
    if (!commodities.includes(commodity)) known.delete(commodity);
  }
  return summarise({ firing, latest, references: known });
}

function section(title, testid, items, empty, note = null) {
  return h("section", { class: "summary-section", "data-testid": testid },
    h("h3", {}, title),
    note ? h("p", { class: "muted note" }, note) : null,
    items.length ? h("ul", {}, items) : h("p", { class: "muted" }, empty));
}

function entry(testid, data, onOpen, ...children) {
  const button = h("button", { type: "button", class: "summary-entry", "data-testid": testid, dataset: data }, ...children);
  button.addEventListener("click", () => onOpen(data));
  return h("li", {}, button);
}

/** Draws the summary; onOpen({commodity, province, market?}) opens a series. */
export function renderSummary(container, summary, { catalog, i18n, onOpen, now }) {
  const name = (id) => catalog.commodityName(id, i18n.lang);
  const place = (code) => catalog.provinceName(code);
  const percent = (fraction) => i18n.percent(fraction);
  const alerts = summary.alerts.map((a) => entry("summary-alert",
    { commodity: a.commodity, province: a.province, market: a.market, severity: a.severity }, onOpen,
    h("span", { class: `badge sev sev-${a.severity}` }, i18n.t("severity." + a.severity)), " ",
    h("b", {}, name(a.commodity)), " · ", place(a.province), " ",
    h("span", { class: "muted" }, i18n.t("summary.alerts.count", { count: a.count }))));
  const movers = summary.movers.map((m) => entry("summary-mover",
    { commodity: m.commodity, province: m.province, change: m.change.toFixed(4) }, onOpen,
    h("b", {}, name(m.commodity)), " · ", place(m.province), " ",
    h("span", { class: m.change >= 0 ? "up" : "down" }, percent(m.change))));
  const alps = summary.alps.map((a) => entry("summary-alps",
    { commodity: a.commodity, phase: a.national || "" }, onOpen,
    h("b", {}, name(a.commodity)), ": ",
    a.national
      ? [h("span", { class: `phase phase-${a.national}` }, i18n.t("summary.national") + " " + i18n.t("phase." + a.national)),
        ...a.provinces.filter((p) => p.phase).map((p) => ` · ${place(p.province)} ${i18n.t("phase." + p.phase)}`)]
      : h("span", { class: "muted" }, i18n.t("summary.alps.none"))));
  const crisis = summary.crisis.map((c) => {
    const kindName = c.kind ? i18n.referenceName(c.kind, c.kind === "ceiling" ? catalog.ceilingKind(c.commodity) : null) : "";
    const text = c.state === "met"
      ? i18n.t("summary.crisis.met", { threshold: i18n.threshold(c.threshold), name: kindName, days: c.days, since: i18n.day(c.since) })
      : c.state === "watch"
        ? i18n.t("summary.crisis.watch", { threshold: i18n.threshold(c.threshold), name: kindName, days: c.days })
        : i18n.t("summary.crisis.no");
    return entry("summary-crisis", { commodity: c.commodity, province: c.province, state: c.state }, onOpen,
      h("b", {}, name(c.commodity)), " · ", place(c.province), ": ", h("span", { class: `crisis-${c.state}` }, text));
  });
  const fresh = summary.freshness.map((f) => entry("summary-freshness", { commodity: f.commodity }, onOpen,
    h("b", {}, name(f.commodity)), ": ",
    i18n.t("summary.freshness.entry", { time: i18n.time(f.newest, catalog.zone(null)), age: i18n.age(now - f.newest), count: f.count })));
  container.replaceChildren(
    section(i18n.t("summary.alerts"), "summary-alerts", alerts, i18n.t("summary.alerts.none")),
    section(i18n.t("summary.movers"), "summary-movers", movers, i18n.t("summary.movers.none")),
    section(i18n.t("summary.alps"), "summary-phases", alps, i18n.t("summary.alps.none")),
    section(i18n.t("summary.crisis"), "summary-crises", crisis, i18n.t("summary.crisis.no"),
      i18n.t("summary.crisis.rule", { low: i18n.threshold(summary.thresholds[0]), high: i18n.threshold(summary.thresholds[1]), days: summary.days })),
    section(i18n.t("summary.freshness"), "summary-fresh", fresh, i18n.t("summary.loading")),
  );
}
