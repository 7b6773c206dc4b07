// How far prices are from normal, per market and per province, and the map's colour classes.
// A market is measured against its own usual level (the detectors' expected level) when the
// series has enough history, otherwise against the national median of the same commodity.

export function median(values) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Relative difference of one latest price message from normal, or null if there is no reference. */
export function marketDeviation(msg, nationalMedian) {
  const expected = msg.verdict && msg.verdict.expected;
  if (expected && expected.level > 0) return msg.price / expected.level - 1;
  if (nationalMedian > 0) return msg.price / nationalMedian - 1;
  return null;
}

/**
 * Per province code: {deviation, price, count} from the latest price messages of one commodity.
 * deviation is the median of its markets' deviations, price the median price.
 */
export function provinceDeviations(latestPrices) {
  const messages = [...latestPrices];
  const national = median(messages.map((m) => m.price));
  const byProvince = new Map();
  for (const msg of messages) {
    let entry = byProvince.get(msg.province);
    if (!entry) byProvince.set(msg.province, (entry = { deviations: [], prices: [] }));
    const deviation = marketDeviation(msg, national);
    if (deviation != null) entry.deviations.push(deviation);
    entry.prices.push(msg.price);
  }
  const result = new Map();
  for (const [code, entry] of byProvince) {
    result.set(code, { deviation: median(entry.deviations), price: median(entry.prices), count: entry.prices.length });
  }
  return result;
}

// Diverging classes (ColorBrewer RdBu, 7 classes): blue below normal, red above. Class edges are
// the fractions where the next class starts.
export const DEVIATION_CLASSES = [
  { upTo: -0.2, colour: "#2166ac", label: "< −20%" },
  { upTo: -0.1, colour: "#67a9cf", label: "−20 … −10%" },
  { upTo: -0.03, colour: "#d1e5f0", label: "−10 … −3%" },
  { upTo: 0.03, colour: "#f7f7f7", label: "±3%" },
  { upTo: 0.1, colour: "#fddbc7", label: "3 … 10%" },
  { upTo: 0.2, colour: "#ef8a62", label: "10 … 20%" },
  { upTo: Infinity, colour: "#b2182b", label: "≥ 20%" },
];
export const NO_DATA_COLOUR = "#e3e6ea";

export function deviationClass(deviation) {
  if (deviation == null || !Number.isFinite(deviation)) return -1;
  return DEVIATION_CLASSES.findIndex((c) => deviation < c.upTo || c.upTo === Infinity);
}

export function deviationColour(deviation) {
  const index = deviationClass(deviation);
  return index < 0 ? NO_DATA_COLOUR : DEVIATION_CLASSES[index].colour;
}

/** Shows a deviation as a coloured chip (white text on the darker classes). */
export function paintDeviation(chip, deviation, i18n) {
  const text = i18n.percent(deviation);
  if (chip.textContent !== text) chip.textContent = text;
  chip.style.background = deviationColour(deviation);
  chip.classList.toggle("dark", Math.abs(deviation ?? 0) >= 0.1);
}
