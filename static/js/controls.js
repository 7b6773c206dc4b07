// The commodity, province and market pickers, filled from the catalog.

import { h } from "./dom.js";

function option(value, text, selected) {
  return h("option", { value, selected: selected || null }, text);
}

/** Fills the three selects; selects: {commodity, province, market} elements. */
export function fillControls(selects, catalog, selection, i18n) {
  selects.commodity.replaceChildren(...catalog.commodityList.map((c) =>
    option(c.id, catalog.commodityName(c.id, i18n.lang), c.id === selection.commodity)));
  selects.province.replaceChildren(option("", i18n.t("control.allProvinces"), !selection.province),
    ...catalog.provinceList.map((p) => option(p.code, p.name, p.code === selection.province)));
  fillMarketControl(selects.market, catalog, selection, i18n);
}

/** The markets of the selected province, or of all provinces grouped by province. */
export function fillMarketControl(select, catalog, selection, i18n) {
  const choices = catalog.marketsIn(selection.province);
  const placeholder = option("", i18n.t("control.noMarket"), !selection.market);
  if (selection.province) {
    select.replaceChildren(placeholder, ...choices.map((m) => option(m.id, m.name, m.id === selection.market)));
    return;
  }
  const groups = catalog.provinceList
    .map((p) => [p, choices.filter((m) => m.province === p.code)])
    .filter(([, list]) => list.length)
    .map(([p, list]) => h("optgroup", { label: p.name }, list.map((m) => option(m.id, m.name, m.id === selection.market))));
  select.replaceChildren(placeholder, ...groups);
}

/** The reference picker: kinds named by names(kind) (in the page's language), `chosen` selected. */
export function fillReferenceControl(select, kinds, chosen, names) {
  select.replaceChildren(...kinds.map((kind) => option(kind, names(kind), kind === chosen)));
}
