// How far prices are from a reference the analyst chose, per market and per province, and the
// map's colour classes. The references (3-month average, the Lebaran-aligned level a year
// earlier, the HAP/HET) are computed by the server from each series' whole stored history
// (GET /api/v1/references, detectors/references.py); the page only divides the latest price by
// them, so a live price is measured against a level that does not chase it. The detectors'
// adaptive "usual level" answers another question (is this tick odd?) and stays on the chart.

export const REFERENCE_KINDS = ["avg3m", "year", "ceiling"];
export const DEFAULT_REFERENCE = "avg3m";

export function median(values) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Relative difference of a price from a reference ({value}), or null when there is none. */
export function against(price, reference) {
  return reference && reference.value > 0 && Number.isFinite(price) ? price / reference.value - 1 : null;
}

/** The body of GET /api/v1/references, looked up by market and province. */
export class References {
  constructor(body = null) {
    this.commodity = body ? body.commodity : null;
    this.series = new Map((body ? body.series : []).map((s) => [s.market, s]));
    this.provinces = new Map((body ? body.provinces : []).map((p) => [p.province, p]));
    this.national = body ? body.national : null;
  }

  /** A series' reference of one kind ({value, ...}), or null while unknown. */
  ofMarket(market, kind) {
    const entry = this.series.get(market);
    return (entry && entry.references[kind]) || null;
  }

  ofProvince(code, kind) {
    const entry = this.provinces.get(code);
    return (entry && entry.references[kind]) || null;
  }
}

/** Relative difference of one latest price message from its series' reference of `kind`. */
export function marketDeviation(msg, references, kind) {
  return against(msg.price, references.ofMarket(msg.market, kind));
}

/**
 * Per province code: {deviation, price, count, reference} from the latest price messages of one
 * commodity: the median latest price against the province's reference (that of the daily
 * median price over its markets).
 */
export function provinceDeviations(latestPrices, references, kind) {
  const prices = new Map();
  for (const msg of latestPrices) {
    if (!prices.has(msg.province)) prices.set(msg.province, []);
    prices.get(msg.province).push(msg.price);
  }
  const result = new Map();
  for (const [code, list] of prices) {
    const price = median(list);
    const reference = references.ofProvince(code, kind);
    result.set(code, { deviation: against(price, reference), price, count: list.length, reference });
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
