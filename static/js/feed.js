// The alert feed: the subscribed commodity's alerts, one item per episode in its current state
// (firing or resolved), newest first, with severity colours and acknowledgement. Each item leads
// with the alert's message (the rule's `message:` text), then the rule's title. Alerts are rare
// next to prices, so the list is rebuilt whole.

import { against } from "./deviation.js";
import { h } from "./dom.js";
import { formatPrice } from "./i18n.js";

function alertItem(alert, { store, catalog, i18n, onSelect, selectedSeries, references, reference }) {
  const zone = catalog.zone(alert.province);
  const ack = store.ackOf(alert);
  // The alert's price against the reference the analyst chose, as on the map and in the table.
  const level = references.ofMarket(alert.market, reference);
  const deviation = against(alert.price, level);
  const market = catalog.markets.get(alert.market);
  const place = [catalog.marketName(alert.market), market && market.city, catalog.provinceName(alert.province)]
    .filter(Boolean).join(", ");
  const kind = catalog.ceilingKind(alert.commodity);
  const detectors = (alert.detectors || []).map((d) => i18n.detector(d, kind));

  const text = i18n.alertText(alert), title = i18n.alertTitle(alert);
  // The title is the item's button (keyboard and screen readers); a click anywhere on the item
  // does the same. A list item keeps its list role, so the feed stays a list.
  const item = h("li", {
    class: `alert sev-${alert.severity} state-${alert.state}` +
      (selectedSeries === `${alert.commodity}/${alert.market}` ? " current" : ""),
    "data-testid": "alert-item",
    dataset: {
      id: alert.id, key: alert.key, state: alert.state, severity: alert.severity,
      commodity: alert.commodity, market: alert.market, province: alert.province, acked: String(Boolean(ack)),
    },
  },
  h("div", { class: "alert-head" },
    h("span", { class: "badge sev" }, i18n.t("severity." + alert.severity)),
    h("span", { class: "badge state" }, i18n.t("feed." + alert.state)),
    ack ? h("span", { class: "badge ack", "data-testid": "alert-ack" }, "✓ " + i18n.t("feed.acked", { by: ack.by })) : null,
    alert.state === "firing" && alert.awaiting_confirmation
      ? h("span", { class: "badge awaiting", "data-testid": "alert-awaiting", title: i18n.t("feed.awaitingWhy") },
        i18n.t("feed.awaiting"))
      : null,
    h("time", { class: "alert-time" }, alert.state === "resolved" && alert.resolved_at
      ? `${i18n.time(alert.started_at ?? alert.ts, zone)} → ${i18n.time(alert.resolved_at, zone)}`
      : i18n.time(alert.started_at ?? alert.ts, zone)),
  ),
  h("button", { type: "button", class: "alert-title", "data-testid": "alert-text" }, text),
  text !== title ? h("div", { class: "alert-rule muted" }, title) : null,
  h("div", { class: "alert-place" }, catalog.commodityName(alert.commodity, i18n.lang), " · ", place),
  h("div", { class: "alert-price", "data-testid": "alert-deviation", dataset: { deviation: deviation == null ? "" : deviation.toFixed(4) } },
    h("b", {}, formatPrice(alert.price)),
    level ? " · " + i18n.t("feed.against", {
      deviation: i18n.percent(deviation), name: i18n.referenceName(reference, kind), level: formatPrice(level.value),
    }) : ""),
  detectors.length ? h("div", { class: "alert-detectors muted" }, i18n.t("feed.detectors", { list: detectors.join(", ") })) : null,
  );
  item.addEventListener("click", () => onSelect(alert));
  return item;
}

/** Redraws the feed list; onSelect(alert) jumps to the alert's series. */
export function renderFeed(list, context) {
  const { store, i18n } = context;
  const episodes = store.episodes();
  list.dataset.count = String(episodes.length);
  if (episodes.length === 0) {
    list.replaceChildren(h("li", { class: "empty muted" }, i18n.t("feed.empty")));
    return;
  }
  list.replaceChildren(...episodes.map((alert) => alertItem(alert, context)));
}
