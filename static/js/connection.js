// The /ws/prices connection: subscribe, hand frames over, reconnect with exponential backoff and
// jitter. What to subscribe to (including `since`, the last alert id seen) is asked of the page
// at every (re)connect, so a dropped connection resumes where it left off.

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 30000;

/**
 * Delay before reconnect attempt number `attempt` (0-based): doubling up to a cap, then a random
 * point in its upper half, so a server restart is not met by every browser at the same instant
 * while each still waits at least half the nominal delay.
 */
export function backoffDelay(attempt, random = Math.random, base = BACKOFF_BASE_MS, cap = BACKOFF_CAP_MS) {
  const nominal = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  return Math.round(nominal / 2 + random() * (nominal / 2));
}

export function pricesUrl(location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/prices`;
}

export class PriceSocket {
  /**
   * url: the /ws/prices URL.
   * subscription(): the subscribe message to send now.
   * prepare(): awaited before each attempt (e.g. load the catalog); a rejection counts as a failed attempt.
   * onMessages(list): every frame is an array of messages.
   * onState(state, retryAt): state is "connecting", "open" or "closed"; retryAt is a Date.now() value or null.
   */
  constructor({ url, subscription, prepare, onMessages, onState }) {
    this.url = url;
    this.subscription = subscription;
    this.prepare = prepare || (async () => {});
    this.onMessages = onMessages;
    this.onState = onState;
    this.ws = null;
    this.attempt = 0;
    this.timer = 0;
    this.state = "closed";
  }

  start() {
    this.connect();
  }

  /** Sends the current subscription again, e.g. after the commodity changed. */
  resubscribe() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(this.subscription()));
  }

  /** Skips the rest of the backoff wait (the browser came back online, the user asked). */
  retryNow() {
    if (this.state === "closed") {
      clearTimeout(this.timer);
      this.connect();
    }
  }

  setState(state, retryAt = null) {
    this.state = state;
    this.onState(state, retryAt);
  }

  async connect() {
    this.timer = 0;
    this.setState("connecting");
    try {
      await this.prepare();
    } catch (error) {
      this.scheduleRetry();
      return;
    }
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (error) {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify(this.subscription()));
    };
    ws.onmessage = (event) => {
      if (this.state !== "open") {
        // Only a server that answers counts as recovered; one that accepts and drops at once
        // keeps the backoff growing.
        this.attempt = 0;
        this.setState("open");
      }
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (error) {
        console.warn("pasarwatch: ignoring a frame that is not JSON", error);
        return;
      }
      this.onMessages(Array.isArray(frame) ? frame : [frame]);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.scheduleRetry();
    };
    // An error is always followed by close, which does the retry.
    ws.onerror = () => {};
  }

  scheduleRetry() {
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.timer = setTimeout(() => this.connect(), delay);
    this.setState("closed", Date.now() + delay);
  }
}
