// A task run now, or soon (once for a burst of requests), so live updates that each ask for a
// fresh read (references, forecast, summary) cost one read per interval, not one per message.

export class Later {
  /** task: an async function; delay: ms that soon() waits. */
  constructor(task, delay) {
    this.task = task;
    this.delay = delay;
    this.timer = 0;
  }

  /** Runs the task now, cancelling a pending run. */
  now() {
    clearTimeout(this.timer);
    this.timer = 0;
    return this.task();
  }

  /** Runs the task after `delay` unless a run is already pending (then nothing changes). */
  soon() {
    if (!this.timer) this.timer = setTimeout(() => this.now(), this.delay);
  }

  /** Runs the task after `delay` from now, moving a pending run there. */
  after() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.now(), this.delay);
  }
}
