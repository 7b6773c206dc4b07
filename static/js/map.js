// The province map: SVG paths from the shipped TopoJSON, in an equirectangular projection
// (Indonesia straddles the equator, so plain lon/lat is barely distorted), coloured by how far
// each province's latest prices are from the reference the analyst chose (deviation.js).

import { fill, h, setAttr } from "./dom.js";
import { DEVIATION_CLASSES, NO_DATA_COLOUR, deviationColour, deviationClass } from "./deviation.js";
import { formatPrice } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";
const UNITS_PER_DEGREE = 20;

function ringPath(ring, project) {
  let d = "";
  for (let i = 0; i < ring.length; i++) {
    const [x, y] = project(ring[i]);
    d += (i ? "L" : "M") + x.toFixed(1) + "," + y.toFixed(1);
  }
  return d + "Z";
}

function polygons(geometry) {
  if (!geometry) return [];
  return geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
}

export class ProvinceMap {
  /** topology: the shipped TopoJSON; onSelect(code) when a province is clicked. */
  constructor(container, topology, { onSelect }) {
    this.container = container;
    this.onSelect = onSelect;
    this.features = globalThis.topojson.feature(topology, topology.objects.provinces).features;
    this.paths = new Map(); // code -> path element
    this.data = new Map();
    this.firing = new Map();
    this.i18n = null;
    this.build();
  }

  build() {
    let minLon = Infinity, maxLon = -Infinity, minLat = Infinity, maxLat = -Infinity;
    for (const f of this.features) {
      for (const polygon of polygons(f.geometry)) {
        for (const [lon, lat] of polygon[0]) {
          minLon = Math.min(minLon, lon); maxLon = Math.max(maxLon, lon);
          minLat = Math.min(minLat, lat); maxLat = Math.max(maxLat, lat);
        }
      }
    }
    const project = ([lon, lat]) => [(lon - minLon) * UNITS_PER_DEGREE, (maxLat - lat) * UNITS_PER_DEGREE];
    const width = (maxLon - minLon) * UNITS_PER_DEGREE, height = (maxLat - minLat) * UNITS_PER_DEGREE;

    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `-4 -4 ${(width + 8).toFixed(0)} ${(height + 8).toFixed(0)}`);
    svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
    // A group of buttons, one per province (role "img" may not hold focusable parts).
    svg.setAttribute("role", "group");
    svg.setAttribute("aria-labelledby", "map-title");
    svg.classList.add("map-svg");
    for (const f of this.features) {
      const path = document.createElementNS(SVG, "path");
      path.setAttribute("d", polygons(f.geometry).map((p) => p.map((r) => ringPath(r, project)).join("")).join(""));
      path.setAttribute("fill", NO_DATA_COLOUR);
      path.setAttribute("data-testid", "map-province");
      path.setAttribute("data-code", f.properties.code);
      path.setAttribute("data-name", f.properties.name);
      path.setAttribute("tabindex", "0");
      path.setAttribute("role", "button");
      path.setAttribute("aria-label", f.properties.name);
      path.classList.add("province");
      path.addEventListener("click", () => this.onSelect(path.dataset.code));
      path.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); this.onSelect(path.dataset.code); }
      });
      path.addEventListener("mousemove", (e) => this.showTip(path, e));
      path.addEventListener("mouseleave", () => this.hideTip());
      svg.append(path);
      this.paths.set(f.properties.code, path);
    }
    this.tip = h("div", { class: "map-tip", "data-testid": "map-tooltip", hidden: true });
    this.container.replaceChildren(svg, this.tip);
    this.svg = svg;
  }

  /** Re-keys provinces by the catalog's codes once the catalog is known. */
  joinCatalog(catalog) {
    this.paths = new Map();
    for (const path of this.svg.querySelectorAll("path.province")) {
      const code = catalog.provinceCodeFor(path.dataset.code, path.dataset.name);
      path.dataset.code = code;
      path.dataset.name = catalog.provinces.has(code) ? catalog.provinceName(code) : path.dataset.name;
      path.setAttribute("aria-label", path.dataset.name);
      this.paths.set(code, path);
    }
  }

  setLanguage(i18n) {
    this.i18n = i18n;
  }

  /** deviations: code -> {deviation, price, count}; firing: code -> number of alerts firing. */
  update(deviations, firing, selected) {
    this.data = deviations;
    this.firing = firing;
    for (const [code, path] of this.paths) {
      const entry = deviations.get(code);
      const deviation = entry ? entry.deviation : null;
      setAttr(path, "fill", deviationColour(deviation));
      setAttr(path, "data-deviation", deviation == null ? "" : deviation.toFixed(4));
      setAttr(path, "data-class", deviationClass(deviation));
      setAttr(path, "data-alerts", firing.get(code) || 0);
      path.classList.toggle("alerting", (firing.get(code) || 0) > 0);
      path.classList.toggle("selected", code === selected);
      setAttr(path, "aria-pressed", code === selected);
      setAttr(path, "aria-label", deviation == null ? path.dataset.name
        : `${path.dataset.name} ${this.i18n ? this.i18n.percent(deviation) : ""}`.trim());
    }
    // Draw the selected outline above its neighbours' shared borders.
    const chosen = this.paths.get(selected);
    if (chosen && chosen !== this.svg.lastElementChild) this.svg.append(chosen);
  }

  showTip(path, event) {
    if (!this.i18n) return;
    const code = path.dataset.code;
    const entry = this.data.get(code);
    const alerts = this.firing.get(code) || 0;
    const i18n = this.i18n;
    fill(this.tip,
      h("strong", {}, path.dataset.name),
      entry
        ? h("div", {}, [formatPrice(entry.price), entry.reference ? `${i18n.percent(entry.deviation)} vs ${formatPrice(entry.reference.value)}` : null,
          i18n.t("map.tooltip.markets", { count: entry.count })].filter(Boolean).join(" · "))
        : h("div", { class: "muted" }, i18n.t("map.noData")),
      alerts ? h("div", { class: "tip-alert" }, i18n.t("map.tooltip.alerts", { count: alerts })) : null,
    );
    const box = this.container.getBoundingClientRect();
    this.tip.hidden = false;
    const x = event.clientX - box.left + 14;
    const y = event.clientY - box.top + 14;
    // Inside the map, and inside the window: a map partly scrolled out of view keeps its tip visible.
    const bottom = Math.min(box.height, window.innerHeight - box.top);
    this.tip.style.left = Math.max(0, Math.min(x, box.width - this.tip.offsetWidth - 4)) + "px";
    this.tip.style.top = Math.max(0, Math.min(y, bottom - this.tip.offsetHeight - 4)) + "px";
  }

  hideTip() {
    this.tip.hidden = true;
  }
}

/** The colour key under the map. */
export function renderLegend(element, i18n) {
  element.replaceChildren(
    ...DEVIATION_CLASSES.map((c) => h("span", { class: "legend-item" }, h("i", { style: `background:${c.colour}` }), c.label)),
    h("span", { class: "legend-item" }, h("i", { style: `background:${NO_DATA_COLOUR}` }), i18n.t("map.noData")),
    h("span", { class: "legend-item" }, h("i", { class: "legend-alert" }), i18n.t("chart.legend.alert")),
  );
}
