// Build step (not loaded by the page): simplify the 38-province TopoJSON for the dashboard map.
//
//   cd "$(mktemp -d)" && npm install topojson-simplify@3 topojson-client@3 topojson-server@3
//   node /work/main/static/geo/simplify.mjs \
//       ../shared/data/geo/indonesia-38-provinces.topo.json /work/main/static/geo/provinces.topo.json
//
// The libraries are resolved from the current directory, so the repository needs no node_modules.
import { createRequire } from "node:module";
import { readFileSync, writeFileSync } from "node:fs";

const require = createRequire(process.cwd() + "/");
const simplify = require("topojson-simplify");
const client = require("topojson-client");
const server = require("topojson-server");

// Keeping the upper half of the arcs' points by visual weight is indistinguishable at dashboard size.
const KEEP_QUANTILE = 0.5;
// Rings under ~40 km² (steradians) are specks at this scale; every province keeps its largest ring.
const MIN_RING_AREA = 1e-6;
// 1e4 steps over ~46° of longitude is ~500 m, far below one screen pixel.
const QUANTIZATION = 1e4;

// The source gives the four provinces created in 2022 their parent's code; these are their
// Kemendagri codes, so that every province has its own code on the map.
const CODE_BY_NAME = {
  "Papua Selatan": "93",
  "Papua Tengah": "94",
  "Papua Pegunungan": "95",
  "Papua Barat Daya": "96",
};

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error("usage: node simplify.mjs INPUT.topo.json OUTPUT.topo.json");
  process.exit(2);
}

const source = JSON.parse(readFileSync(input, "utf8"));
const objectName = Object.keys(source.objects)[0];
let topo = simplify.presimplify(source);
topo = simplify.simplify(topo, simplify.quantile(topo, KEEP_QUANTILE));
topo = simplify.filter(topo, simplify.filterWeight(topo, MIN_RING_AREA, simplify.sphericalRingArea));

const features = client.feature(topo, topo.objects[objectName]);
for (const f of features.features) {
  const name = f.properties.PROVINSI;
  f.properties = { code: CODE_BY_NAME[name] || f.properties.KODE_PROV, name };
}
features.features.sort((a, b) => a.properties.code.localeCompare(b.properties.code));

const codes = features.features.map((f) => f.properties.code);
if (new Set(codes).size !== 38 || features.features.some((f) => !f.geometry)) {
  console.error("expected 38 provinces with distinct codes and geometry, got", codes);
  process.exit(1);
}
const out = server.topology({ provinces: features }, QUANTIZATION);
writeFileSync(output, JSON.stringify(out));
console.log(`${output}: ${codes.length} provinces, ${JSON.stringify(out).length} bytes`);
