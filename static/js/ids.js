// Redis stream ids ("1719800001234-0") order alerts and ticks; compare them as numbers, never as
// strings ("9-0" < "10-0" is false as text).

function parts(id) {
  const dash = id.indexOf("-");
  return dash < 0 ? [Number(id), 0] : [Number(id.slice(0, dash)), Number(id.slice(dash + 1))];
}

/** Negative, zero or positive as stream id a is before, equal to or after b. */
export function compareIds(a, b) {
  const [ams, aseq] = parts(a);
  const [bms, bseq] = parts(b);
  return ams - bms || aseq - bseq;
}

/** The later of two ids; either may be null. */
export function laterId(a, b) {
  if (a == null) return b;
  if (b == null) return a;
  return compareIds(a, b) >= 0 ? a : b;
}
