// Unit tests of the page's DOM-free modules: `node --test static/tests/` (Node 18+).
// The page as a whole is tested in a real browser against a real server (tests/ at the root).
import assert from "node:assert/strict";
import { test } from "node:test";

const js = (name) => import(new URL(`../js/${name}`, import.meta.url));
const { compareIds, laterId } = await js("ids.js");
const { backoffDelay } = await js("connection.js");
const { SeriesBuffer } = await js("series.js");
const { median, marketDeviation, provinceDeviations, deviationClass, References, against } = await js("deviation.js");
const { summarise, crisisState, medianPhase } = await js("summary.js");
const { Store, Catalog, normaliseName, mostReported } = await js("store.js");
const { I18n, STRINGS, formatPrice } = await js("i18n.js");
const { readSelection, selectionAddress } = await js("selection.js");

test("stream ids compare as numbers", () => {
  assert.ok(compareIds("9-0", "10-0") < 0);
  assert.ok(compareIds("10-1", "10-0") > 0);
  assert.equal(compareIds("10-1", "10-1"), 0);
  assert.equal(laterId(null, "1-0"), "1-0");
  assert.equal(laterId("12-0", "9-5"), "12-0");
});

test("backoff doubles to a cap and keeps at least half of it", () => {
  assert.equal(backoffDelay(0, () => 0), 250);
  assert.equal(backoffDelay(0, () => 1), 500);
  assert.equal(backoffDelay(3, () => 1), 4000);
  assert.equal(backoffDelay(20, () => 0), 15000);
  assert.equal(backoffDelay(20, () => 1), 30000);
  assert.equal(backoffDelay(5000, () => 0.5), 22500);
});

test("series buffer keeps time order, drops duplicates and stays bounded", () => {
  const buffer = new SeriesBuffer(3);
  for (const [id, ts] of [["1-0", 1], ["3-0", 3], ["2-0", 2], ["2-0", 2], ["4-0", 4]]) {
    buffer.add({ id, ts, price: ts * 10, verdict: ts === 4 ? { expected: { level: 1, lo: 0, hi: 2 } } : {} });
  }
  assert.deepEqual(buffer.points.map((p) => p.ts), [2, 3, 4]);
  assert.equal(buffer.add({ id: "0-0", ts: 0, price: 1 }), false, "older than everything kept");
  assert.equal(buffer.add({ id: "3-0", ts: 3, price: 1 }), false, "already held");
  assert.deepEqual(buffer.columns(), [[2, 3, 4], [20, 30, 40], [null, null, 1], [null, null, 0], [null, null, 2]]);
});

// The references of GET /api/v1/references for a surge: West Java's 3-month average is 34.000
// and its median price is now 61.000; one market has too little history for an average.
const SURGE = {
  commodity: "bawang-merah",
  series: [
    { market: "a", province: "32", references: { avg3m: { value: 40000 }, year: null, ceiling: { value: 41500, kind: "HAP" } } },
    { market: "b", province: "32", references: { avg3m: null, year: null, ceiling: { value: 41500, kind: "HAP" } } },
  ],
  provinces: [{ province: "32", price: 61000, references: { avg3m: { value: 34000 }, year: null,
    ceiling: { value: 41500, kind: "HAP" }, week: { value: 50000 } },
    crisis: { avg3m: [{ threshold: 0.075, since: "2024-04-01", days: 17, met: true }, { threshold: 0.125, since: "2024-04-01", days: 17, met: true }],
      ceiling: [{ threshold: 0.075, since: "2024-04-15", days: 3, met: false }, { threshold: 0.125, since: null, days: 0, met: false }] } }],
  national: null,
  crisis_thresholds: [0.075, 0.125],
  crisis_days: 15,
};

test("deviation against the reference the analyst chose, never against a level that chases the price", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.equal(median([]), null);
  const refs = new References(SURGE);
  // The detectors' adaptive level has caught up with the surge; it is not what is measured against.
  const surging = { market: "a", province: "32", price: 80000, verdict: { expected: { level: 79000 } } };
  assert.equal(marketDeviation(surging, refs, "avg3m"), 1);
  assert.equal(marketDeviation(surging, refs, "ceiling").toFixed(3), "0.928");
  assert.equal(marketDeviation(surging, refs, "year"), null, "no year-earlier level: no deviation, not 0");
  assert.equal(marketDeviation({ market: "b", price: 1 }, refs, "avg3m"), null);
  assert.equal(marketDeviation(surging, new References(), "avg3m"), null, "before the references load");
  assert.equal(against(110, { value: 100 }).toFixed(2), "0.10");
  const byProvince = provinceDeviations([surging, { market: "b", province: "32", price: 42000 },
    { market: "c", province: "32", price: 61000 }, { market: "d", province: "31", price: 5 }], refs, "avg3m");
  assert.equal(byProvince.get("32").price, 61000);
  assert.equal(byProvince.get("32").deviation.toFixed(2), "0.79", "a surge of about +80%");
  assert.equal(deviationClass(byProvince.get("32").deviation), 6, "the map's darkest red");
  assert.equal(byProvince.get("31").deviation, null);
  assert.equal(deviationClass(0), 3);
  assert.equal(deviationClass(-0.5), 0);
  assert.equal(deviationClass(0.15), 5);
  assert.equal(deviationClass(0.5), 6);
  assert.equal(deviationClass(null), -1);
});

test("the summary ranks alerts, movers, ALPS phases, the crisis criterion and freshness", () => {
  const firing = [
    { commodity: "bawang-merah", province: "32", market: "a", severity: "warning" },
    { commodity: "bawang-merah", province: "32", market: "b", severity: "critical" },
    { commodity: "cabai", province: "31", market: "c", severity: "info" },
  ];
  const latest = [
    { commodity: "bawang-merah", province: "32", market: "a", ts: 100, verdict: { classes: { alps: "crisis" } } },
    { commodity: "bawang-merah", province: "32", market: "b", ts: 90, verdict: { classes: { alps: "alert" } } },
    { commodity: "bawang-merah", province: "32", market: "c", ts: 80, verdict: { classes: { alps: "normal" } } },
    { commodity: "cabai", province: "31", market: "c", ts: 50, verdict: {} },
  ];
  const summary = summarise({ firing, latest, references: new Map([["bawang-merah", SURGE]]) });
  assert.deepEqual(summary.alerts.map((a) => [a.commodity, a.province, a.severity, a.count, a.market]),
    [["bawang-merah", "32", "critical", 2, "b"], ["cabai", "31", "info", 1, "c"]]);
  assert.equal(summary.movers.length, 1);
  assert.equal(summary.movers[0].change.toFixed(2), "0.22");
  assert.deepEqual(summary.alps.map((a) => [a.commodity, a.national]), [["bawang-merah", "alert"], ["cabai", null]]);
  assert.deepEqual(summary.crisis.map((c) => [c.province, c.state, c.kind, c.threshold]), [["32", "met", "avg3m", 0.125]]);
  assert.deepEqual(summary.freshness.map((f) => [f.commodity, f.newest, f.count]), [["bawang-merah", 100, 3], ["cabai", 50, 1]]);
  assert.equal(medianPhase([{ verdict: {} }]), null);
  assert.equal(crisisState({ crisis: { avg3m: [], ceiling: null } }).state, "no");
});

test("store keeps the subscribed commodity's latest prices", () => {
  const store = new Store();
  store.reset("cabai");
  assert.equal(store.apply({ type: "price", commodity: "beras", market: "m", ts: 1, price: 1 }), null);
  assert.equal(store.apply({ type: "price", commodity: "cabai", market: "m", ts: 2, price: 1 }), "price");
  assert.equal(store.apply({ type: "price", commodity: "cabai", market: "m", ts: 1, price: 9 }), null, "late tick");
  assert.equal(store.latest.get("cabai/m").price, 1);
  assert.equal(store.apply({ type: "health", commodity: "cabai", market: "m", state: "stale", age: 100 }), "health");
  assert.ok(store.health.get("cabai/m"));
  store.apply({ type: "price", commodity: "cabai", market: "m", ts: 20, price: 1 });
  assert.equal(store.health.get("cabai/m"), undefined, "a price ends staleness");
  store.apply({ type: "snapshot", prices: [{ commodity: "cabai", market: "n", ts: 1, price: 5 }], alerts: [] });
  assert.deepEqual([...store.latest.keys()], ["cabai/n"]);
});

test("store follows alert episodes, acknowledgements and the last alert id", () => {
  const store = new Store();
  store.reset("cabai");
  const fire = { type: "alert", id: "5-0", key: "r/cabai/m", rule: "r", state: "firing", commodity: "cabai",
    market: "m", province: "32", ts: 2, started_at: 2 };
  assert.equal(store.apply(fire), "alert");
  assert.equal(store.apply(fire), null, "duplicate");
  assert.equal(store.firing().length, 1);
  store.apply({ type: "ack", key: "r/cabai/m", by: "budi", at: 100 });
  assert.equal(store.ackOf(fire).by, "budi");
  store.apply({ ...fire, id: "7-0", state: "resolved", resolved_at: 3 });
  assert.equal(store.firing().length, 0);
  assert.deepEqual(store.episodes().map((a) => a.state), ["resolved"]);
  assert.ok(store.ackOf(store.episodes()[0]), "the ack covers the whole episode");
  store.addAlert({ ...fire, id: "6-0" });
  assert.equal(store.firing().length, 0, "an older event arriving late does not revive the key");
  const again = { ...fire, id: "9-0", ts: 10, started_at: 10 };
  store.apply(again);
  assert.equal(store.ackOf(again), null, "a new episode is not acknowledged");
  assert.equal(store.episodes().length, 2);
  assert.deepEqual([...store.alertMarks("cabai", "m")].map(([ts, kinds]) => [ts, kinds.sort()]).sort((a, b) => a[0] - b[0]),
    [[2, ["alert", "resolved"]], [10, ["alert"]]], "raised and resolved, at their ticks");
  store.addAlert({ ...again, id: "10-0", ts: 11, transition: "repeated" });
  store.addAlert({ ...again, id: "11-0", ts: 12, transition: "fired" });
  assert.deepEqual([...store.alertMarks("cabai", "m").keys()].sort((a, b) => a - b), [2, 10, 12], "a repeat is no news");
  store.apply({ type: "alert", id: "12-0", commodity: "beras", key: "x", state: "firing" });
  assert.equal(store.lastAlertId, "12-0", "since covers alerts of every commodity seen");
  assert.equal(store.episodes().length, 2, "other commodities stay out of the feed");
});

test("catalog joins map features by name and gives local time zones", () => {
  assert.equal(normaliseName("Daerah Istimewa Yogyakarta"), normaliseName("DI Yogyakarta"));
  assert.equal(normaliseName("Kep. Riau"), normaliseName("Kepulauan Riau"));
  const catalog = new Catalog({
    commodities: [{ id: "a" }, { id: "b" }],
    provinces: [{ code: "94", name: "Papua Tengah", timezone: "Asia/Jayapura", tz_abbr: "WIT" }],
  });
  assert.equal(catalog.provinceCodeFor("91", "Papua Tengah"), "94");
  assert.equal(catalog.provinceCodeFor("32", "Jawa Barat"), "32");
  assert.deepEqual(catalog.zone("94"), { timezone: "Asia/Jayapura", abbr: "WIT" });
  assert.deepEqual(catalog.zone("00"), { timezone: "Asia/Jakarta", abbr: "WIB" });
  assert.equal(mostReported([{ commodity: "a" }, { commodity: "b" }, { commodity: "b" }, { commodity: "z" }], catalog), "b");
  assert.equal(mostReported([], catalog), null);
});

test("prices, times and strings in both languages", () => {
  assert.equal(formatPrice(52000), "Rp 52.000");
  assert.equal(formatPrice(1234567.4), "Rp 1.234.567");
  const id = new I18n("id"), en = new I18n("en");
  // 2024-07-01 02:13:20 UTC is 11.13 in Jayapura (WIT, UTC+9).
  assert.equal(id.time(1719800000, { timezone: "Asia/Jayapura", abbr: "WIT" }), "1 Jul 2024, 11.13 WIT");
  assert.match(en.time(1719800000, { timezone: "Asia/Makassar", abbr: "WITA" }), /10:13 WITA$/);
  assert.equal(id.t("conn.retry", { seconds: 3 }), "Terputus — coba lagi 3 dtk");
  assert.equal(en.t("conn.retry", { seconds: 3 }), "Disconnected — retry in 3 s");
  assert.equal(en.alertTitle({ rule: "kenaikan-tajam", summary: "Kenaikan" }), "Sharp rise above the usual level");
  assert.equal(id.alertTitle({ rule: "kenaikan-tajam", summary: "Kenaikan" }), "Kenaikan");
  assert.equal(en.alertTitle({ rule: "x", summary: "Naik / Rise" }), "Rise");
  assert.deepEqual(Object.keys(STRINGS.id).filter((k) => !(k in STRINGS.en)), [], "every string has English");
});

test("selection is read from the address", () => {
  assert.deepEqual(readSelection("#commodity=cabai&market=pasar-agung"),
    { commodity: "cabai", province: null, market: "pasar-agung" });
  assert.deepEqual(readSelection(""), { commodity: null, province: null, market: null });
});

test("selection is read from the fragment, else from the query of older links", () => {
  const chilli = { commodity: "cabai-rawit-merah", province: null, market: "pasar-agung" };
  assert.deepEqual(readSelection("", "?commodity=cabai-rawit-merah&market=pasar-agung"), chilli);
  assert.deepEqual(readSelection("#commodity=cabai-rawit-merah&market=pasar-agung", "?commodity=bawang-merah"), chilli);
  assert.deepEqual(readSelection("#x=1", "?commodity=cabai-rawit-merah&market=pasar-agung"), chilli);
});

test("the address keeps the fragment only, and leaves out what the page chose itself", () => {
  const where = { pathname: "/", search: "?commodity=cabai-rawit-merah&market=pasar-agung&lang=en" };
  const chosen = { commodity: "cabai-rawit-merah", province: "32", market: "pasar-agung" };
  assert.equal(selectionAddress(chosen, where), "/?lang=en#commodity=cabai-rawit-merah&province=32&market=pasar-agung");
  assert.equal(selectionAddress(chosen, { pathname: "/", search: "" }, true), "/#province=32");
  assert.equal(selectionAddress({ commodity: "beras-medium" }, { pathname: "/", search: "" }, true), "/");
});

test("the ceiling detector is named by the commodity's kind of government price", () => {
  const catalog = new Catalog({ commodities: [{ id: "cabai-rawit-merah", ceiling_kind: "HAP" },
    { id: "beras-medium", ceiling_kind: "HET" }, { id: "cabai-merah-besar", ceiling_kind: null }] });
  const id = new I18n("id"), en = new I18n("en");
  assert.equal(id.detector("ceiling", catalog.ceilingKind("cabai-rawit-merah")), "HAP (harga acuan penjualan)");
  assert.equal(id.detector("ceiling", catalog.ceilingKind("beras-medium")), "HET (harga eceran tertinggi)");
  assert.equal(en.detector("ceiling", catalog.ceilingKind("cabai-rawit-merah")), "Reference price (HAP)");
  assert.equal(en.detector("ceiling", catalog.ceilingKind("beras-medium")), "Legal retail ceiling (HET)");
  assert.equal(catalog.ceilingKind("cabai-merah-besar"), null);
  assert.doesNotMatch(id.detector("ceiling", "HAP"), /eceran tertinggi/);
  assert.equal(id.detector("zscore", "HAP"), "Skor-z");
});

test("an alert reads as its rule's message, else its title", () => {
  const id = new I18n("id");
  const alert = { rule: "kenaikan-tajam", summary: "Kenaikan", message: "Cabai Rawit Merah di Pasar Agung naik ke Rp 90.000" };
  assert.equal(id.alertText(alert), "Cabai Rawit Merah di Pasar Agung naik ke Rp 90.000");
  assert.equal(id.alertText({ rule: "kenaikan-tajam", summary: "Kenaikan" }), "Kenaikan");
  assert.equal(new I18n("en").alertText(alert), "Sharp rise above the usual level", "no Indonesian template in English");
});

test("detector reasons are rendered in the page's language from codes and numbers", () => {
  const id = new I18n("id"), en = new I18n("en");
  const ceiling = { price: 80000, score: 80000 / 41500, ceilingKind: "HAP" };
  assert.equal(id.reason("ceiling", ceiling), "+93% terhadap HAP Rp 41.500");
  assert.equal(en.reason("ceiling", ceiling), "+93% against the HAP Rp 41.500");
  assert.equal(id.reason("zscore", { score: 4.25 }), "skor-z 4,3");
  assert.equal(id.reason("alps", { score: 2.5, classes: { alps: "crisis" } }), "ALPS 2,50 (krisis)");
  assert.equal(id.reason("forecast", { price: 60000, score: 3, expected: { level: 50000 } }), "+20% dari prakiraan Rp 50.000 (skor 3,0)");
  assert.equal(en.reason("newdetector", { score: 1 }), "score 1.0");
  for (const name of ["zscore", "iqr", "forecast", "crossmarket", "ceiling", "anomaly", "alps", "ipa", "stale"]) {
    assert.notEqual(id.detector(name), name, `${name} has an Indonesian name`);
  }
  const words = (lang) => Object.values(STRINGS[lang]).map((text) => text.toLowerCase());
  for (const word of ["waspada", "siaga", "awas"]) {
    assert.equal(words("id").filter((text) => text === word).length, 1, `${word} names one severity only`);
  }
});

test("thresholds and calendar days read as written", () => {
  const id = new I18n("id"), en = new I18n("en");
  assert.equal(id.threshold(0.075), "7,5%");
  assert.equal(en.threshold(0.125), "12.5%");
  assert.equal(id.day("2024-04-01"), "1 Apr 2024");
});

test("a task asked for many times soon runs once", async () => {
  const { Later } = await js("later.js");
  let runs = 0;
  const later = new Later(async () => { runs += 1; }, 5);
  later.soon(); later.soon(); later.soon();
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(runs, 1);
  later.soon();
  await later.now();
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(runs, 2, "now() cancels the pending run");
});

test("throttled views redraw at most every interval, the others when dirty", async () => {
  const { Frames } = await js("frames.js");
  const frames = new Frames(() => {}, { map: 200 });
  frames.dirty.add("map").add("chart");
  assert.equal(frames.due("map", 1000), true);
  frames.dirty.add("map");
  assert.equal(frames.due("map", 1100), false, "100 ms later: not yet");
  assert.equal(frames.due("map", 1200), true);
  assert.equal(frames.take("chart"), true);
  assert.equal(frames.take("chart"), false);
});
