// The price axis's range (static/js/scale.js): `node --test static/tests/`.
import assert from "node:assert/strict";
import { test } from "node:test";

const { BAND_REACH, priceRange } = await import(new URL("../js/scale.js", import.meta.url));

test("prices, lines and a modest forecast interval are all inside the axis", () => {
  const range = priceRange([[40000, 42000, 44000], [null, 41000, 41500], [41500, 41500, 41500]], [[43000, 41000], [46000, 47000]]);
  assert.equal(range.clipped, false);
  assert.ok(range.min <= 40000 && range.max >= 47000, JSON.stringify(range));
});

test("a calm series' interval wider than its ripples is not cut", () => {
  const range = priceRange([[15000, 15100, 15050]], [[14000], [17500]]);
  assert.equal(range.clipped, false);
  assert.ok(range.min <= 14000 && range.max >= 17500, JSON.stringify(range));
});

test("an interval far past the prices is cut at half their span beyond them, and says so", () => {
  // The demo's shallot surge: prices 30,000-93,000, the 28-day 95% interval up to 450,000.
  const prices = [30000, 50000, 80000];
  const forecast = [80000, 92218, 77742];
  const range = priceRange([prices, forecast], [[66000, 60000], [305044, 450000]]);
  assert.equal(range.clipped, true);
  const ceiling = 92218 + (92218 - 30000) * BAND_REACH;
  assert.ok(range.max < ceiling * 1.06 && range.max >= ceiling, JSON.stringify(range));
  assert.ok(range.min <= 30000 && range.min >= 0, JSON.stringify(range));
});

test("a flat series still gets a readable axis, and nothing to draw gives none", () => {
  const flat = priceRange([[15000, 15000, 15000]], [[15000], [15000]]);
  assert.ok(flat.min < 15000 && flat.max > 15000, JSON.stringify(flat));
  assert.equal(priceRange([[null, null]], [[1, 2]]), null);
});
