/**
 * The price axis's range. Every line the chart draws counts in full (prices, the detectors'
 * level and band, the HAP/HET, the reference, the forecast's points); the forecast's interval
 * only as far as half the lines' span beyond them. A 28-day interval of a series in the middle
 * of a surge can reach several times its price, and drawn in full it flattens every price into
 * the bottom of the chart: there it is cut at the edge (``clipped``) and the table under the
 * chart's heading gives its numbers. "Span" is the lines' range, or half their highest value
 * when that is more (a calm series' interval is not cut for being wider than its few ripples).
 */
export const BAND_REACH = 0.5; // how far past the lines the interval may widen the axis, in spans
const PAD = 0.05; // of the axis, on both sides
const LEAST_PAD = 0.02; // of the highest value: a flat line is not drawn on the axis's edge

const finite = (value) => value != null && Number.isFinite(value);

/** {min, max, clipped} for lines (arrays of values) and band (arrays of values); null without a value. */
export function priceRange(lines, band) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const values of lines) {
    for (const value of values) {
      if (finite(value)) {
        lo = Math.min(lo, value);
        hi = Math.max(hi, value);
      }
    }
  }
  if (lo === Infinity) return null;
  const reach = BAND_REACH * Math.max(hi - lo, Math.abs(hi) * 0.5);
  const floor = lo - reach;
  const ceiling = hi + reach;
  let min = lo;
  let max = hi;
  let clipped = false;
  for (const values of band) {
    for (const value of values) {
      if (!finite(value)) continue;
      if (value > ceiling || value < floor) clipped = true;
      min = Math.min(min, Math.max(value, floor));
      max = Math.max(max, Math.min(value, ceiling));
    }
  }
  const padding = Math.max((max - min) * PAD, Math.abs(max) * LEAST_PAD, 1);
  return { min: Math.max(0, min - padding), max: max + padding, clipped };
}
