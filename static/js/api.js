// The HTTP read APIs the page uses (same origin as the page).

const API = "/api/v1";

async function getJSON(path) {
  const response = await fetch(API + path, { headers: { accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

const q = encodeURIComponent;

/** {commodities, provinces, markets} */
export function fetchCatalog() {
  return getJSON("/catalog");
}

/** The latest price message of every series. */
export async function fetchLatest() {
  return (await getJSON("/series")).series;
}

/** A series' stored price messages, oldest first. */
export async function fetchHistory(commodity, market, limit) {
  return (await getJSON(`/series/${q(commodity)}/${q(market)}/history?limit=${limit}`)).points;
}

/** The newest alert events (firing and resolved) of one commodity. */
export async function fetchAlerts(commodity, limit) {
  return (await getJSON(`/alerts?commodity=${q(commodity)}&limit=${limit}`)).alerts;
}

/** Every series' price against its references (3-month average, a year earlier, HAP/HET). */
export function fetchReferences(commodity) {
  return getJSON(`/references?commodity=${q(commodity)}`);
}

/** The demo replay's state: {state: off|running|finished|failed, from, to}. */
export function fetchDemo() {
  return getJSON("/demo");
}

/** The alerts firing now, of every commodity. */
export async function fetchFiring(limit) {
  return (await getJSON(`/alerts?state=firing&limit=${limit}`)).alerts;
}

/** The online model's forecast of a series with its 95% interval; null while it has none. */
export async function fetchForecast(commodity, market, horizon) {
  const response = await fetch(`${API}/forecast?commodity=${q(commodity)}&market=${q(market)}&horizon=${horizon}`,
    { headers: { accept: "application/json" } });
  if (response.status === 404) return null; // no detector state for the series yet
  if (!response.ok) throw new Error(`/forecast: HTTP ${response.status}`);
  return response.json();
}
