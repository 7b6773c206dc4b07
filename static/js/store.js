// What the page knows: the catalog, and the live state built from /ws/prices messages for the
// subscribed commodity (latest price per series, alert events, acknowledgements, feed health).
// Plain data in, plain data out; drawing is elsewhere.

import { compareIds, laterId } from "./ids.js";

export const MAX_ALERTS = 300;
const DEFAULT_ZONE = { timezone: "Asia/Jakarta", abbr: "WIB" };

export function seriesKey(commodity, market) {
  return commodity + "/" + market;
}

// Catalog names and map names differ in spelling ("DI Yogyakarta" / "Daerah Istimewa
// Yogyakarta", "Kep. Riau" / "Kepulauan Riau"); compare them in one normal form.
export function normaliseName(name) {
  return name.toLowerCase()
    .replace(/^provinsi\s+/, "")
    .replace(/daerah istimewa/g, "di")
    .replace(/daerah khusus ibukota/g, "dki")
    .replace(/kepulauan|kep\./g, "kep")
    .replace(/[^a-z0-9]/g, "");
}

/** The catalog commodity with prices from the most markets, or null when there are none. */
export function mostReported(latestPrices, catalog) {
  const counts = new Map();
  for (const p of latestPrices) {
    if (catalog.commodities.has(p.commodity)) counts.set(p.commodity, (counts.get(p.commodity) || 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? null;
}

export class Catalog {
  constructor({ commodities = [], provinces = [], markets = [] } = {}) {
    this.commodityList = commodities;
    this.provinceList = [...provinces].sort((a, b) => a.name.localeCompare(b.name, "id"));
    this.marketList = [...markets].sort((a, b) => a.name.localeCompare(b.name, "id"));
    this.commodities = new Map(commodities.map((c) => [c.id, c]));
    this.provinces = new Map(provinces.map((p) => [p.code, p]));
    this.markets = new Map(markets.map((m) => [m.id, m]));
    this.provinceByName = new Map(provinces.map((p) => [normaliseName(p.name), p]));
  }

  /** The time zone to show a province's times in. */
  zone(provinceCode) {
    const p = this.provinces.get(provinceCode);
    return p && p.timezone ? { timezone: p.timezone, abbr: p.tz_abbr || "" } : DEFAULT_ZONE;
  }

  marketsIn(provinceCode) {
    return provinceCode ? this.marketList.filter((m) => m.province === provinceCode) : this.marketList;
  }

  commodityName(id, lang) {
    const c = this.commodities.get(id);
    return c ? (lang === "en" ? c.name_en : c.name_id) || c.name_id : id;
  }

  /** "HET" (a legal retail ceiling) or "HAP" (a reference price) of a commodity, or null. */
  ceilingKind(id) {
    const c = this.commodities.get(id);
    return (c && c.ceiling_kind) || null;
  }

  marketName(id) {
    const m = this.markets.get(id);
    return m ? m.name : id;
  }

  provinceName(code) {
    const p = this.provinces.get(code);
    return p ? p.name : code;
  }

  /** The catalog code of a map feature: by name first, since codes of new provinces vary by source. */
  provinceCodeFor(featureCode, featureName) {
    const byName = this.provinceByName.get(normaliseName(featureName));
    return byName ? byName.code : featureCode;
  }
}

export class Store {
  constructor() {
    this.commodity = null;
    this.lastAlertId = null; // survives resubscription: it is what `since` resumes from
    this.acks = new Map(); // alert key -> {by, at, started_at}
    this.reset(null);
  }

  /** Forgets the live state of the previous subscription. */
  reset(commodity) {
    this.commodity = commodity;
    this.latest = new Map(); // series key -> latest price message
    this.alerts = []; // alert events, newest first
    this.alertIds = new Set();
    this.lastEvent = new Map(); // alert key -> its newest event
    this.health = new Map(); // series key -> {state, age, at}
  }

  /** Applies one server message; returns what it changed ("price", "alert", ...) or null. */
  apply(msg) {
    switch (msg.type) {
      case "snapshot":
        this.latest.clear();
        for (const price of msg.prices || []) this.applyPrice(price);
        for (const alert of msg.alerts || []) this.addAlert(alert);
        return "snapshot";
      case "price":
        return this.applyPrice(msg) ? "price" : null;
      case "alert":
        this.lastAlertId = laterId(this.lastAlertId, msg.id);
        return msg.commodity === this.commodity && this.addAlert(msg) ? "alert" : null;
      case "health":
        return this.applyHealth(msg) ? "health" : null;
      case "ack":
        this.acks.set(msg.key, { by: msg.by, at: msg.at, started_at: this.episodeStart(msg.key) });
        return "ack";
      case "error":
        console.warn("pasarwatch: server rejected a message:", msg.reason);
        return null;
      default:
        return null;
    }
  }

  applyPrice(msg) {
    if (msg.commodity !== this.commodity) return false;
    const key = seriesKey(msg.commodity, msg.market);
    const previous = this.latest.get(key);
    if (previous && previous.ts > msg.ts) return false; // a late tick is history, not the latest
    this.latest.set(key, msg);
    this.health.delete(key);
    return true;
  }

  applyHealth(msg) {
    if (msg.commodity !== this.commodity) return false;
    const key = seriesKey(msg.commodity, msg.market);
    if (msg.state === "stale") this.health.set(key, { state: msg.state, age: msg.age, at: Date.now() });
    else if (!this.health.delete(key)) return false;
    return true;
  }

  /** Adds an alert event from any source (snapshot, live, history API); false if already held. */
  addAlert(alert) {
    if (this.alertIds.has(alert.id)) return false;
    this.lastAlertId = laterId(this.lastAlertId, alert.id);
    const newest = this.lastEvent.get(alert.key);
    if (!newest || compareIds(alert.id, newest.id) > 0) this.lastEvent.set(alert.key, alert);
    if (alert.ack) this.acks.set(alert.key, { ...alert.ack, started_at: alert.started_at });
    let at = 0;
    while (at < this.alerts.length && compareIds(this.alerts[at].id, alert.id) > 0) at += 1;
    if (at >= MAX_ALERTS) return false;
    this.alerts.splice(at, 0, alert);
    this.alertIds.add(alert.id);
    while (this.alerts.length > MAX_ALERTS) this.alertIds.delete(this.alerts.pop().id);
    return true;
  }

  episodeStart(key) {
    const newest = this.lastEvent.get(key);
    return newest ? newest.started_at : undefined;
  }

  /** An acknowledgement belongs to the episode (firing → resolved) that was current when it came. */
  ackOf(alert) {
    const ack = this.acks.get(alert.key);
    if (!ack) return null;
    const episode = ack.started_at === undefined ? this.episodeStart(alert.key) : ack.started_at;
    return alert.started_at === episode ? ack : null;
  }

  /**
   * One entry per episode (a key's firing and its resolution), as its newest event, newest
   * first: the feed shows an alert once, in its current state.
   */
  episodes() {
    const seen = new Set();
    return this.alerts.filter((a) => {
      const episode = a.key + "@" + a.started_at;
      if (seen.has(episode)) return false;
      seen.add(episode);
      return true;
    });
  }

  /** Alert events whose key is firing now. */
  firing() {
    return [...this.lastEvent.values()].filter((a) => a.state === "firing");
  }

  /** Per tick time of one series, the alert transitions there ("alert" raised, "resolved"). */
  alertMarks(commodity, market) {
    const marks = new Map();
    for (const a of this.alerts) {
      if (a.commodity !== commodity || a.market !== market) continue;
      // Raised (or escalated) and resolved are news; a repeat or a confirmation of a firing
      // alert is not a new thing to look at on the chart.
      const raised = !a.transition || a.transition === "fired" || a.transition === "escalated";
      const kind = a.state === "resolved" ? "resolved" : raised ? "alert" : null;
      if (!kind) continue;
      if (!marks.has(a.ts)) marks.set(a.ts, []);
      if (!marks.get(a.ts).includes(kind)) marks.get(a.ts).push(kind);
    }
    return marks;
  }
}
