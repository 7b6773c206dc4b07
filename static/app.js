// The dashboard: wires the catalog, the /ws/prices connection, the store and the views together.
// Messages only change the store and mark views dirty; views redraw at most once per animation
// frame, so hundreds of updates a second cost one redraw each frame.

import { fetchAlerts, fetchCatalog, fetchDemo, fetchHistory, fetchLatest, fetchReferences } from "./js/api.js";
import { PriceChart, renderSeriesHead } from "./js/chart.js";
import { fillControls, fillMarketControl, fillReferenceControl } from "./js/controls.js";
import { PriceSocket, pricesUrl } from "./js/connection.js";
import { DEFAULT_REFERENCE, REFERENCE_KINDS, References, provinceDeviations } from "./js/deviation.js";
import { renderDemo } from "./js/demo.js";
import { setText } from "./js/dom.js";
import { renderFeed } from "./js/feed.js";
import { SeriesForecast } from "./js/forecast.js";
import { I18n, LANGUAGES } from "./js/i18n.js";
import { ProvinceMap, renderLegend } from "./js/map.js";
import { MarketTable } from "./js/markets.js";
import { describeOdds, renderOdds } from "./js/odds.js";
import { SeriesBuffer } from "./js/series.js";
import { Catalog, Store, mostReported, seriesKey } from "./js/store.js";
import { readSelection, writeSelection } from "./js/selection.js";
import { readSummary, renderSummary } from "./js/summary.js";
import { Frames } from "./js/frames.js";
import { Later } from "./js/later.js";

const ALERT_HISTORY = 100;
const LANG_KEY = "pasarwatch.lang";
const REFERENCE_KEY = "pasarwatch.reference";
// References move slowly (a 3-month average); live prices are divided by them as they come, and
// the references themselves are re-read at most this often while prices arrive (ms).
const REFERENCES_EVERY = 15000;
const SUMMARY_EVERY = 30000;
const FORECAST_EVERY = 5000; // ms between forecast reads while the series' prices arrive

const $ = (id) => document.getElementById(id);
const ui = {
  commodity: $("commodity"), province: $("province"), market: $("market"),
  connection: $("connection"), rate: $("rate"), lang: $("lang"), reference: $("reference"),
  mapSubtitle: $("map-subtitle"), chartReference: $("chart-reference"), summary: $("summary"),
  legendCeiling: $("legend-ceiling"), legendReference: $("legend-reference"), marketsDeviation: $("markets-deviation"),
  chartTitle: $("chart-title"), chartSubtitle: $("chart-subtitle"), chartLatest: $("chart-latest"),
  chartDeviation: $("chart-deviation"), chartStale: $("chart-stale"), chartCount: $("chart-count"),
  feed: $("feed"), feedFiring: $("feed-firing"), legend: $("map-legend"), odds: $("odds"),
};

let i18n = new I18n(localStorage.getItem(LANG_KEY) || "id");
let catalog = null;
let autoCommodity = false; // the commodity was picked by the page, not by the user
let references = new References();
let reference = REFERENCE_KINDS.includes(localStorage.getItem(REFERENCE_KEY)) ? localStorage.getItem(REFERENCE_KEY) : DEFAULT_REFERENCE;
const store = new Store();
const selection = readSelection(location.hash, location.search); // {commodity, province, market}
let buffer = new SeriesBuffer();
let map = null;
const chart = new PriceChart($("chart"), i18n);
const markets = new MarketTable($("markets"), (market) => selectMarket(market));

// ---- redraw scheduling -------------------------------------------------------------------

// Views that show every series redraw at most this often (ms): at hundreds of prices a second
// nobody reads a table faster, and the chart keeps every frame for the selected series.
const frames = new Frames(redraw, { map: 200, markets: 200 });
const invalidate = (...views) => frames.invalidate(...views);

function redraw(now) {
  if (!catalog) return false;
  const context = { store, catalog, i18n, province: selection.province, market: selection.market, references, reference };
  if (frames.due("map", now) && map) {
    map.update(provinceDeviations(store.latest.values(), references, reference), firingByProvince(), selection.province);
  }
  if (frames.due("markets", now)) markets.render(context);
  if (frames.take("chart")) {
    const ceiling = references.ofMarket(selection.market, "ceiling");
    const level = reference === "ceiling" ? null : references.ofMarket(selection.market, reference);
    chart.setData(buffer, store.alertMarks(selection.commodity, selection.market), { ceiling, reference: level }, forecast.steps);
    ui.legendCeiling.hidden = !ceiling;
    ui.legendReference.hidden = !level;
    renderSeriesHead(ui, { store, catalog, i18n, selection, points: buffer.length, references, reference });
  }
  if (frames.take("odds")) {
    const ceiling = references.ofMarket(selection.market, "ceiling");
    const ceilingKind = catalog.ceilingKind(selection.commodity);
    renderOdds(ui.odds, currentSeriesKey() ? describeOdds(forecast.body, { i18n, ceiling, ceilingKind }) : { state: "pending" }, i18n);
  }
  if (frames.take("feed")) {
    renderFeed(ui.feed, { ...context, onSelect: jumpToAlert, selectedSeries: currentSeriesKey() });
    const count = store.firing().length;
    ui.feedFiring.hidden = count === 0;
    setText(ui.feedFiring, `${count} ${i18n.t("feed.firing").toLowerCase()}`);
  }
}

const ALL_VIEWS = ["map", "markets", "chart", "odds", "feed"];

function firingByProvince() {
  const counts = new Map();
  for (const alert of store.firing()) counts.set(alert.province, (counts.get(alert.province) || 0) + 1);
  return counts;
}

function currentSeriesKey() {
  return selection.market ? seriesKey(selection.commodity, selection.market) : null;
}

// ---- server data ---------------------------------------------------------------------------

async function loadCatalog() {
  if (catalog) return;
  const loaded = new Catalog(await fetchCatalog());
  catalog = loaded;
  if (map) map.joinCatalog(catalog);
  if (!catalog.commodities.has(selection.commodity)) {
    selection.commodity = (await busiestCommodity()) ?? catalog.commodityList[0]?.id ?? null;
    autoCommodity = true;
  }
  if (!catalog.provinces.has(selection.province)) selection.province = null;
  if (!catalog.markets.has(selection.market)) selection.market = null;
  store.reset(selection.commodity);
  fillControls(ui, catalog, selection, i18n);
  showReferenceChoice();
  showSeries();
  loadAlertHistory();
  referencesLater.now();
  summaryLater.now();
}

/**
 * With nothing chosen, the commodity most markets report, so a first visit sees prices move
 * rather than an empty rice chart; null when no prices have arrived yet.
 */
async function busiestCommodity() {
  try {
    return mostReported(await fetchLatest(), catalog);
  } catch (error) {
    return null;
  }
}

/** Until the user chooses, keep looking for a commodity with prices (the feed may start later). */
async function revisitAutoCommodity() {
  if (!autoCommodity || !catalog || socket.state !== "open" || store.latest.size > 0) return;
  const busiest = await busiestCommodity();
  if (autoCommodity && busiest && busiest !== selection.commodity) showSelection({ commodity: busiest });
}

/** Recent alerts (resolved ones too) of the commodity, which the snapshot does not carry. */
async function loadAlertHistory() {
  const commodity = selection.commodity;
  if (!commodity) return;
  try {
    const alerts = await fetchAlerts(commodity, ALERT_HISTORY);
    if (commodity !== selection.commodity) return;
    for (const alert of alerts) store.addAlert(alert);
    invalidate(...ALL_VIEWS);
  } catch (error) {
    console.warn("pasarwatch: alert history unavailable", error);
  }
}

/** Fills the chart with the series' stored history (also after a reconnect, to close the gap). */
async function loadHistory() {
  const key = currentSeriesKey();
  if (!key) return;
  const [commodity, market] = [selection.commodity, selection.market];
  try {
    const points = await fetchHistory(commodity, market, buffer.limit);
    if (key !== currentSeriesKey()) return;
    if (buffer.addMany(points)) invalidate("chart");
    forecast.now();
  } catch (error) {
    console.warn("pasarwatch: history unavailable for", key, error);
  }
}

function handleMessages(messages) {
  rate.count += messages.length;
  for (const msg of messages) {
    if (msg.type === "demo") showDemo(msg);
    const change = store.apply(msg);
    // A late tick is not the series' latest price but still belongs on its chart.
    if (msg.type === "price" && msg.market === selection.market && msg.commodity === selection.commodity && buffer.add(msg)) {
      invalidate("chart");
      forecast.soon();
    }
    if (change === "price") {
      invalidate("map", "markets");
      referencesLater.soon();
    } else if (change === "snapshot") {
      referencesLater.now();
      if (!selection.market && (selection.market = pickMarket())) {
        fillMarketControl(ui.market, catalog, selection, i18n);
        showSeries();
      } else {
        refreshSeries();
      }
      invalidate(...ALL_VIEWS);
    } else if (change === "alert") {
      invalidate(...ALL_VIEWS);
      summaryLater.after();
    } else if (change === "ack") {
      invalidate("feed");
    } else if (change === "health") {
      invalidate("markets", "chart");
    }
  }
}

const socket = new PriceSocket({
  url: pricesUrl(location),
  prepare: loadCatalog,
  subscription: () => ({
    type: "subscribe",
    commodity: selection.commodity ? [selection.commodity] : [],
    // The map needs every province of the commodity, so province and market filter on the page.
    province: [],
    market: [],
    ...(store.lastAlertId ? { since: store.lastAlertId } : {}),
  }),
  onMessages: handleMessages,
  onState: (state, retryAt) => showConnection(state, retryAt),
});

// ---- the forecast of the selected series: the chart's line and the odds panel ----------------

const forecast = new SeriesForecast(
  () => (currentSeriesKey() ? { commodity: selection.commodity, market: selection.market } : null),
  () => invalidate("chart", "odds"), FORECAST_EVERY);

// ---- references and the summary -----------------------------------------------------------

const summaryReferences = new Map(); // commodity -> GET /api/v1/references body

/** The selected commodity's references (GET /api/v1/references), then every view redraws. */
const referencesLater = new Later(async () => {
  const commodity = selection.commodity;
  if (!commodity) return;
  try {
    const body = await fetchReferences(commodity);
    if (commodity !== selection.commodity) return;
    references = new References(body);
    summaryReferences.set(commodity, body);
    invalidate(...ALL_VIEWS);
  } catch (error) {
    console.warn("pasarwatch: references unavailable", error);
  }
}, REFERENCES_EVERY);

/** The reference picker and every label that names the chosen reference. */
function showReferenceChoice() {
  const kind = catalog ? catalog.ceilingKind(selection.commodity) : null;
  fillReferenceControl(ui.reference, REFERENCE_KINDS, reference, (k) => i18n.referenceName(k, kind));
  const name = i18n.referenceName(reference, kind);
  setText(ui.mapSubtitle, i18n.t("map.subtitle.reference", { name }));
  setText(ui.legendReference.querySelector("span"), i18n.t("chart.legend.reference", { name }));
  setText(ui.legendCeiling.querySelector("span"), i18n.referenceName("ceiling", kind));
  setText(ui.marketsDeviation, i18n.t("markets.col.deviationVs", { name }));
}

ui.reference.addEventListener("change", () => {
  reference = REFERENCE_KINDS.includes(ui.reference.value) ? ui.reference.value : DEFAULT_REFERENCE;
  localStorage.setItem(REFERENCE_KEY, reference);
  showReferenceChoice();
  invalidate(...ALL_VIEWS);
});

let summary = null;

// Read every SUMMARY_EVERY ms, and a second after a live alert (once for a burst).
const summaryLater = new Later(async () => {
  if (!catalog) return;
  try {
    summary = await readSummary(catalog, summaryReferences);
    drawSummary();
  } catch (error) {
    console.warn("pasarwatch: summary unavailable", error);
  }
}, 1000);
setInterval(() => summaryLater.now(), SUMMARY_EVERY);

function drawSummary() {
  if (!summary || !catalog) return;
  renderSummary(ui.summary, summary, {
    catalog, i18n, now: Date.now() / 1000,
    onOpen: ({ commodity, province, market }) => {
      autoCommodity = false;
      showSelection({ commodity, province: province || null, market: market || null });
    },
  });
}

// ---- connection state and update rate ------------------------------------------------------

let retryAt = null;
const rate = { count: 0 };

function showConnection(state, at) {
  retryAt = at;
  ui.connection.dataset.state = state;
  const text = state === "closed" && at
    ? i18n.t("conn.retry", { seconds: Math.max(0, Math.ceil((at - Date.now()) / 1000)) })
    : i18n.t("conn." + state);
  setText(ui.connection.querySelector(".conn-text"), text);
}

let seconds = 0;
setInterval(() => {
  seconds += 1;
  if (seconds % 5 === 0) revisitAutoCommodity();
  if (socket.state === "closed") showConnection("closed", retryAt);
  setText(ui.rate, socket.state === "open" ? i18n.t("conn.rate", { rate: rate.count }) : "");
  rate.count = 0;
}, 1000);

// ---- selection -----------------------------------------------------------------------------

/** A market to show when none is chosen: the first in the province that has prices. */
function pickMarket() {
  const withPrices = [...store.latest.values()]
    .filter((m) => !selection.province || m.province === selection.province)
    .map((m) => m.market)
    .sort((a, b) => catalog.marketName(a).localeCompare(catalog.marketName(b), "id"));
  return withPrices[0] ?? null;
}

/** (Re)starts the chart on the selected series. */
function showSeries() {
  writeSelection(selection, autoCommodity);
  buffer = new SeriesBuffer();
  forecast.reset();
  const market = catalog.markets.get(selection.market);
  chart.show(market ? {
    commodity: selection.commodity, market: market.id, zone: catalog.zone(market.province),
    ceilingKind: catalog.ceilingKind(selection.commodity),
  } : null);
  refreshSeries();
  invalidate(...ALL_VIEWS);
}

/** Brings the buffer up to date: the latest price now, the stored history (closing any gap) when it comes. */
function refreshSeries() {
  const latest = store.latest.get(currentSeriesKey());
  if (latest) buffer.add(latest);
  loadHistory();
}

function selectProvince(code) {
  selection.province = code || null;
  ui.province.value = code || "";
  const market = catalog.markets.get(selection.market);
  if (market && selection.province && market.province !== selection.province) selection.market = null;
  if (!selection.market) selection.market = pickMarket();
  fillMarketControl(ui.market, catalog, selection, i18n);
  showSeries();
}

function selectMarket(id) {
  autoCommodity = false; // a market the visitor chose: the commodity is theirs now too
  selection.market = id || null;
  const market = catalog.markets.get(selection.market);
  if (market && selection.province && market.province !== selection.province) {
    selection.province = market.province;
    ui.province.value = market.province;
    fillMarketControl(ui.market, catalog, selection, i18n);
  }
  ui.market.value = selection.market || "";
  showSeries();
}

function jumpToAlert(alert) {
  autoCommodity = false;
  showSelection({ commodity: alert.commodity, province: alert.province, market: alert.market });
  $("chart").scrollIntoView({ block: "nearest", behavior: "smooth" });
}

/** Moves to a whole selection at once (an alert's series, an edited address). */
function showSelection({ commodity, province, market }) {
  if (commodity && commodity !== selection.commodity && catalog.commodities.has(commodity)) {
    selection.commodity = commodity;
    store.reset(commodity);
    references = new References();
    socket.resubscribe();
    loadAlertHistory();
    referencesLater.now();
    showReferenceChoice();
  }
  selection.province = catalog.provinces.has(province) ? province : null;
  selection.market = catalog.markets.has(market) ? market : pickMarket();
  fillControls(ui, catalog, selection, i18n);
  showSeries();
}

ui.commodity.addEventListener("change", () => {
  autoCommodity = false;
  showSelection({ ...selection, commodity: ui.commodity.value });
});
ui.province.addEventListener("change", () => { autoCommodity = false; selectProvince(ui.province.value); });
ui.market.addEventListener("change", () => selectMarket(ui.market.value));

// ---- the demo replay ---------------------------------------------------------------------------

let demo = null;

function showDemo(status) {
  demo = status;
  renderDemo($("demo"), demo, i18n);
}

// ---- language ------------------------------------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = i18n.lang;
  showReferenceChoice();
  document.title = i18n.t("page.title");
  i18n.apply(document);
  renderLegend(ui.legend, i18n);
  chart.setLanguage(i18n);
  if (map) map.setLanguage(i18n);
  markets.relabel();
  showConnection(socket.state, retryAt);
  if (catalog) fillControls(ui, catalog, selection, i18n);
  invalidate(...ALL_VIEWS);
  drawSummary();
  if (demo) showDemo(demo);
}

ui.lang.addEventListener("click", () => {
  const next = LANGUAGES[(LANGUAGES.indexOf(i18n.lang) + 1) % LANGUAGES.length];
  localStorage.setItem(LANG_KEY, next);
  i18n = new I18n(next);
  applyLanguage();
});
ui.connection.addEventListener("click", () => socket.retryNow());
window.addEventListener("online", () => socket.retryNow());
window.addEventListener("hashchange", () => {
  if (!catalog) return;
  const wanted = readSelection(location.hash, location.search);
  if (wanted.commodity) autoCommodity = false;
  showSelection(wanted);
});

// ---- start ---------------------------------------------------------------------------------

async function loadMap() {
  const response = await fetch(new URL("./geo/provinces.topo.json", import.meta.url));
  map = new ProvinceMap($("map"), await response.json(), {
    // Clicking the selected province again widens the view to all provinces.
    onSelect: (code) => catalog && selectProvince(code === selection.province ? null : code),
  });
  map.setLanguage(i18n);
  if (catalog) map.joinCatalog(catalog);
  invalidate("map");
}

applyLanguage();
loadMap();
socket.start();
fetchDemo().then(showDemo, (error) => console.warn("pasarwatch: demo state unavailable", error));
