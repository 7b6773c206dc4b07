// The selected commodity, province and market live in the address (#commodity=..&province=..&market=..),
// so a reload, a bookmark or a link from a notification opens the same series. Links sent before
// the page used the fragment carry the selection in the query (?commodity=..&market=..); the page
// reads both, the fragment first, and then keeps only the fragment.

const FIELDS = ["commodity", "province", "market"];

/** {commodity, province, market} from an address' fragment, else from its query. */
export function readSelection(hash, search = "") {
  const fromHash = new URLSearchParams(hash.replace(/^#/, ""));
  const fromQuery = new URLSearchParams(search.replace(/^\?/, ""));
  const source = FIELDS.some((name) => fromHash.get(name)) ? fromHash : fromQuery;
  return Object.fromEntries(FIELDS.map((name) => [name, source.get(name) || null]));
}

/**
 * The address for a selection: the path, the query without selection fields, and the fragment.
 * `auto` says the page chose the commodity (and so the market) itself; those are left out, so a
 * reload chooses again, from the prices there are then, instead of keeping an empty commodity.
 */
export function selectionAddress(selection, { pathname, search }, auto = false) {
  const params = new URLSearchParams();
  for (const name of FIELDS) {
    if (selection[name] && !(auto && name !== "province")) params.set(name, selection[name]);
  }
  const query = new URLSearchParams(search.replace(/^\?/, ""));
  for (const name of FIELDS) query.delete(name);
  const rest = query.toString();
  const hash = params.toString();
  return pathname + (rest ? "?" + rest : "") + (hash ? "#" + hash : "");
}

export function writeSelection(selection, auto = false) {
  const address = selectionAddress(selection, location, auto);
  // replaceState does not fire hashchange, so this does not loop back into the page.
  if (location.pathname + location.search + location.hash !== address) history.replaceState(null, "", address);
}
