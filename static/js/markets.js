// The table of markets for the selected commodity (and province): latest price, its difference
// from the chosen reference (deviation.js) and its local time. Rows are kept and patched, since prices change many times a second.

import { h, setAttr, setText } from "./dom.js";
import { marketDeviation, paintDeviation } from "./deviation.js";
import { formatPrice } from "./i18n.js";
import { seriesKey } from "./store.js";

export class MarketTable {
  constructor(tbody, onSelect) {
    this.tbody = tbody;
    this.onSelect = onSelect;
    this.rows = new Map(); // series key -> {tr, cells}
    this.order = "";
  }

  row(key, market) {
    let row = this.rows.get(key);
    if (row) return row;
    const cells = {
      name: h("span", { class: "market-name" }),
      city: h("span", { class: "muted market-city" }),
      price: h("td", { class: "num" }),
      deviation: h("span", { class: "chip" }),
      time: h("td", { class: "muted time" }),
      flagAlert: h("span", { class: "flag flag-alert" }),
      flagQuarantine: h("span", { class: "flag flag-quarantined" }),
      flagStale: h("span", { class: "flag flag-stale" }),
    };
    const tr = h("tr", { "data-testid": "market-row", dataset: { market }, tabindex: "0" },
      h("td", {}, cells.name, cells.flagAlert, cells.flagQuarantine, cells.flagStale, h("br"), cells.city),
      cells.price,
      h("td", { class: "num" }, cells.deviation),
      cells.time);
    tr.addEventListener("click", () => this.onSelect(market));
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") this.onSelect(market); });
    row = { tr, cells };
    this.rows.set(key, row);
    return row;
  }

  /** Forces the next render to rebuild the rows (e.g. for a new language). */
  relabel() {
    this.order = null;
  }

  /** Shows the latest prices of the store's commodity in `province` (all when null). */
  render({ store, catalog, i18n, province, market, references, reference }) {
    const firing = new Set(store.firing().map((a) => seriesKey(a.commodity, a.market)));
    const shown = [...store.latest.values()]
      .filter((m) => !province || m.province === province)
      .sort((a, b) => catalog.marketName(a.market).localeCompare(catalog.marketName(b.market), "id"));
    const keys = shown.map((m) => seriesKey(m.commodity, m.market));
    for (const msg of shown) {
      const key = seriesKey(msg.commodity, msg.market);
      const { tr, cells } = this.row(key, msg.market);
      const info = catalog.markets.get(msg.market);
      const deviation = marketDeviation(msg, references, reference);
      setText(cells.name, catalog.marketName(msg.market));
      setText(cells.city, [info && info.city, catalog.provinceName(msg.province)].filter(Boolean).join(", "));
      setText(cells.price, formatPrice(msg.price));
      paintDeviation(cells.deviation, deviation, i18n);
      cells.deviation.title = deviation == null ? i18n.t("reference.unknown." + reference) : "";
      setAttr(tr, "data-deviation", deviation == null ? "" : deviation.toFixed(4));
      setText(cells.time, i18n.time(msg.ts, catalog.zone(msg.province)));
      const stale = store.health.get(key);
      // The chart's glyphs: ▲ alert firing, ◆ latest tick quarantined; plus a stale-feed badge.
      setText(cells.flagAlert, firing.has(key) ? "▲" : "");
      setText(cells.flagQuarantine, msg.verdict && msg.verdict.quarantined ? "◆" : "");
      setText(cells.flagStale, stale ? i18n.t("markets.stale") : "");
      cells.flagStale.title = stale ? i18n.t("health.stale", { age: i18n.age(stale.age) }) : "";
      setAttr(tr, "data-price", msg.price);
      setAttr(tr, "data-stale", Boolean(stale));
      tr.classList.toggle("selected", msg.market === market);
      tr.classList.toggle("alerting", firing.has(key));
    }
    const order = keys.join("|");
    if (order !== this.order) {
      this.order = order;
      const wanted = new Set(keys);
      for (const key of this.rows.keys()) if (!wanted.has(key)) this.rows.delete(key);
      this.tbody.replaceChildren(...keys.map((key) => this.rows.get(key).tr));
      if (keys.length === 0) this.tbody.append(h("tr", { class: "empty" }, h("td", { colspan: "4", class: "muted" }, i18n.t("markets.empty"))));
    }
  }
}
