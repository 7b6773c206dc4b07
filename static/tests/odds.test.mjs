// The odds panel's words and numbers (static/js/odds.js, forecast.js) from GET /api/v1/forecast
// bodies as the server returns them: `node --test static/tests/`.
import assert from "node:assert/strict";
import { test } from "node:test";

const js = (name) => import(new URL(`../js/${name}`, import.meta.url));
const { describeOdds, chanceText } = await js("odds.js");
const { chartSteps } = await js("forecast.js");
const { I18n } = await js("i18n.js");

const id = new I18n("id"), en = new I18n("en");

// A chilli series reported daily, 40 days in: h28 has too few residuals yet, h1 is the last price.
const DAILY = {
  last_price: 44500,
  forecasts: [
    { h: 1, point: 44500, lo80: 43518.6, hi80: 45001.2, lo95: 43518.6, hi95: 45001.2, ts: 1707523202, point_source: "last price" },
    { h: 7, point: 44134.5, lo80: 42890.1, hi80: 45003.6, lo95: 42885.8, hi95: 45003.6, ts: 1708041602, point_source: "model" },
    { h: 14, point: 43863.8, lo80: 43366.6, hi80: 44853.0, lo95: 42960.9, hi95: 45512.6, ts: 1708646402, point_source: "model" },
  ],
  odds: { horizon: 14, reported_daily: true, p_rise_10: 0.4277, p_above_reference: 0.0316, reference: 57000, reference_kind: "HAP" },
};
// The same commodity at a market reported weekly: the odds are the raw conformal ones.
const WEEKLY = { ...DAILY, odds: { ...DAILY.odds, reported_daily: false, p_rise_10: 0.0, p_above_reference: 0.996 } };
// Ten days in: no forecast, no odds, but the HAP is named.
const COLD = { last_price: 44500, forecasts: [], odds: { horizon: 14, reported_daily: false, reference: 57000, reference_kind: "HAP" } };

test("odds read as whole percentages, an empirical 0 or 1 as below 1% or above 99%", () => {
  assert.equal(chanceText(0.4277), "43%");
  assert.equal(chanceText(0.0316), "3%");
  assert.equal(chanceText(0), "<1%");
  assert.equal(chanceText(0.004), "<1%");
  assert.equal(chanceText(0.996), ">99%");
  assert.equal(chanceText(undefined), null);
});

test("a warm daily series: both odds, the HAP named in rupiah, the 1-day point marked as the last price", () => {
  const view = describeOdds(DAILY, { i18n: id });
  assert.equal(view.state, "warm");
  assert.equal(view.title, "Peluang dalam 14 hari laporan");
  const [above, rise] = view.chances;
  assert.deepEqual([above.label, above.text, above.p], ["Melewati HAP Rp 57.000", "3%", 0.0316]);
  assert.deepEqual([rise.label, rise.text], ["Naik 10% atau lebih", "43%"]);
  assert.equal(view.caveat, null);
  assert.deepEqual(view.horizons.map((r) => [r.h, r.source]), [[1, "last price"], [7, "model"], [14, "model"], [28, null]]);
  assert.equal(view.horizons[0].point, "Rp 44.500");
  assert.equal(view.horizons[0].sourceText, "harga terakhir*");
  assert.equal(view.horizons[1].interval, "42.890–45.004");
  assert.equal(view.horizons[3].point, "riwayat kurang", "28 days: too few residuals, never a made-up point");
  assert.match(view.lastPriceNote, /^\* harga terakhir: tidak ada model yang mengalahkan harga terakhir/);
  const english = describeOdds(DAILY, { i18n: en });
  assert.equal(english.title, "Odds within 14 reporting days");
  assert.equal(english.chances[0].label, "Passing the HAP (reference price) Rp 57.000");
  assert.equal(english.horizons[0].sourceText, "last price*");
});

test("a series not reported daily carries the calibration caveat", () => {
  const view = describeOdds(WEEKLY, { i18n: id });
  assert.deepEqual(view.chances.map((c) => c.text), [">99%", "<1%"]);
  assert.match(view.caveat, /Dikalibrasi pada laporan harian/);
  assert.match(describeOdds(WEEKLY, { i18n: en }).caveat, /Calibrated on daily reports/);
});

test("without enough history the panel says so, never 0%", () => {
  for (const body of [COLD, null]) {
    const view = describeOdds(body, { i18n: id, ceilingKind: "HAP" });
    assert.equal(view.state, "cold");
    assert.deepEqual(view.chances.map((c) => c.text), ["belum cukup riwayat", "belum cukup riwayat"]);
    assert.equal(view.caveat, null, "nothing to caveat before any odd");
    assert.ok(view.horizons.every((r) => r.point === "riwayat kurang" && r.source === null));
    assert.equal(view.anyForecast, false, "one line instead of a table of dashes");
    assert.equal(view.lastPriceNote, null);
  }
  assert.equal(describeOdds(COLD, { i18n: id }).chances[0].label, "Melewati HAP Rp 57.000");
  assert.equal(describeOdds(null, { i18n: id, ceilingKind: "HET" }).chances[0].label, "Melewati HET");
  assert.equal(describeOdds(undefined, { i18n: id }).state, "pending", "not read yet: nothing shown");
  // A commodity without a HAP/HET: the body names none, and the panel says the commodity has none.
  const none = describeOdds({ ...DAILY, odds: { horizon: 14, reported_daily: true, p_rise_10: 0.2 } }, { i18n: id });
  assert.equal(none.chances[0].text, "Komoditas ini tidak punya HAP/HET");
  assert.equal(none.chances[1].text, "20%");
});

test("the chart draws the calibrated forecasts with their 95% intervals", () => {
  assert.deepEqual(chartSteps(DAILY)[0], { ts: 1707523202, level: 44500, lo: 43518.6, hi: 45001.2, source: "last price" });
  assert.equal(chartSteps(DAILY).length, 3);
  assert.deepEqual(chartSteps(null), []);
});
