// The demo replay's state (GET /api/v1/demo, and {"type": "demo"} messages on /ws/prices): a
// line in the top bar while the real PIHPS period is replayed, and once it has ended, so nobody
// takes the demo's prices for today's, or waits for more.

import { setText } from "./dom.js";

/** Shows ``status`` ({state, from, to}) in ``element``; hidden when no demo runs. */
export function renderDemo(element, status, i18n) {
  const state = status && status.state;
  if (!state || state === "off") {
    element.hidden = true;
    return;
  }
  element.hidden = false;
  element.dataset.state = state;
  const key = state === "finished" ? "demo.finished" : state === "failed" ? "demo.failed" : "demo.running";
  setText(element, i18n.t(key, { from: status.from || "?", to: status.to || "?" }));
}
