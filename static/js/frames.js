// Redraw scheduling: messages only mark views dirty; views redraw at most once per animation
// frame, and views that show every series (map, markets table) at most every `minInterval` ms,
// so hundreds of updates a second cost one redraw each frame.

export class Frames {
  /**
   * draw(now) redraws what is dirty, or returns false when nothing can be drawn yet (the views
   * stay dirty until the next invalidate); minInterval: view -> ms between its redraws.
   */
  constructor(draw, minInterval) {
    this.draw = draw;
    this.minInterval = minInterval;
    this.drawnAt = Object.fromEntries(Object.keys(minInterval).map((view) => [view, 0]));
    this.dirty = new Set();
    this.frame = 0;
  }

  invalidate(...views) {
    for (const view of views) this.dirty.add(view);
    if (!this.frame) this.frame = requestAnimationFrame((now) => this.run(now));
  }

  run(now) {
    this.frame = 0;
    if (this.draw(now) !== false && this.dirty.size) this.frame = requestAnimationFrame((later) => this.run(later));
  }

  /** Whether a throttled view may redraw now; if not, it stays dirty for a later frame. */
  due(view, now) {
    if (!this.dirty.has(view)) return false;
    if (now - this.drawnAt[view] < this.minInterval[view]) return false;
    this.drawnAt[view] = now;
    this.dirty.delete(view);
    return true;
  }

  /** Whether an unthrottled view is dirty; it counts as drawn. */
  take(view) {
    return this.dirty.delete(view);
  }
}
