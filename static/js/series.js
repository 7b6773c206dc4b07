// One series' recent price messages, bounded and kept in time order, so the chart can be redrawn
// from it at any rate without the page's memory growing.

export const MAX_POINTS = 500;

function identity(msg) {
  return msg.id ?? `${msg.ts}/${msg.price}`;
}

export class SeriesBuffer {
  constructor(limit = MAX_POINTS) {
    this.limit = limit;
    this.points = [];
    this.seen = new Set();
  }

  get length() {
    return this.points.length;
  }

  /** Adds a price message unless already held; returns whether the buffer changed. */
  add(msg) {
    const key = identity(msg);
    if (this.seen.has(key)) return false;
    const points = this.points;
    // Ticks nearly always arrive in order, so walking back from the end is O(1) in practice.
    let at = points.length;
    while (at > 0 && points[at - 1].ts > msg.ts) at -= 1;
    if (at === 0 && points.length >= this.limit) return false; // older than everything kept
    points.splice(at, 0, msg);
    this.seen.add(key);
    while (points.length > this.limit) this.seen.delete(identity(points.shift()));
    return true;
  }

  addMany(messages) {
    let changed = false;
    for (const msg of messages) changed = this.add(msg) || changed;
    return changed;
  }

  /** Columns for uPlot: times, prices, usual level, lower and upper band (null where unknown). */
  columns() {
    const n = this.points.length;
    const xs = new Array(n), prices = new Array(n), levels = new Array(n), los = new Array(n), his = new Array(n);
    for (let i = 0; i < n; i++) {
      const p = this.points[i];
      const expected = p.verdict && p.verdict.expected;
      xs[i] = p.ts;
      prices[i] = p.price;
      levels[i] = expected ? expected.level : null;
      los[i] = expected ? expected.lo : null;
      his[i] = expected ? expected.hi : null;
    }
    return [xs, prices, levels, los, his];
  }
}
