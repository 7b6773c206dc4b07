// The selected commodity, province and market live in the address (#commodity=..&province=..&market=..),
// so a reload, a bookmark or a link from a notification opens the same series.

const FIELDS = ["commodity", "province", "market"];

export function readSelection(hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  return Object.fromEntries(FIELDS.map((name) => [name, params.get(name) || null]));
}

export function writeSelection(selection) {
  const params = new URLSearchParams();
  for (const name of FIELDS) if (selection[name]) params.set(name, selection[name]);
  const hash = "#" + params.toString();
  // replaceState does not fire hashchange, so this does not loop back into the page.
  if (location.hash !== hash) history.replaceState(null, "", hash);
}
