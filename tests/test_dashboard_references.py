"""The dashboard over the demo data's Lebaran 2024 shallot surge (Rp 40.000 to 80.000 in four
weeks), in headless Chromium against a real server: by default every deviation is against the
3-month average, so the surge reads as a surge (about +80%) in red on the map and in the table;
the HAP is a line on the chart, not a marker on every tick above it; the summary lists the
commodity in alert and the crisis criterion."""
from __future__ import annotations

import re
import statistics
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.demo_feed import SHALLOT, WEST_JAVA, feed_demo
from tests.test_dashboard_browser import dashboard, playwright  # noqa: F401 - fixtures

RED = "6"  # the map's darkest class (deviationClass: >= +20%)


def open_surge(system, dashboard):
    """The demo's shallot prices up to the surge's peak, and the page on Pasar Agung; West Java's
    map entry. Console errors (failed requests among them) join ``dashboard.errors``."""
    system.wait_processed(feed_demo(system), timeout=240)
    dashboard.page.on("console", lambda m: m.type == "error" and dashboard.errors.append(f"console: {m.text}"))
    dashboard.open(SHALLOT, WEST_JAVA, "pasar-agung")
    expect(dashboard.connection).to_have_attribute("data-state", "open")
    return dashboard.province(WEST_JAVA)


@pytest.mark.timeout(400)
def test_the_lebaran_shallot_surge_reads_as_a_surge_against_the_three_month_average(system, dashboard):
    west_java = open_surge(system, dashboard)
    page = dashboard.page
    expect(dashboard.by_testid("select-reference")).to_have_value("avg3m")
    assert page.evaluate(TRUNCATED_SELECTS) == []

    # The map: West Java in the darkest red, about +80% (its median price against its 3-month average).
    expect(west_java).to_have_attribute("data-class", RED)
    assert 0.7 <= float(west_java.get_attribute("data-deviation")) <= 0.9
    expect(west_java).to_have_attribute("fill", "#b2182b")
    expect(dashboard.by_testid("map-subtitle")).to_contain_text("rata-rata 3 bulan")

    # The table: every market far above its own 3-month average, around +80% in the middle.
    rows = page.locator("[data-testid=market-row]")
    expect(rows).to_have_count(18)
    expect(page.locator("[data-testid=market-row][data-deviation='']")).to_have_count(0)
    deviations = [float(d) for d in rows.evaluate_all("rows => rows.map(r => r.dataset.deviation)")]
    assert min(deviations) > 0.3 and 0.65 <= statistics.median(deviations) <= 0.95, deviations
    agung = page.locator("[data-testid=market-row][data-market=pasar-agung] .chip")
    expect(agung).to_have_text(re.compile(r"^\+\d{2}%$"))
    expect(page.locator("#markets-deviation")).to_have_text("Selisih vs rata-rata 3 bulan")

    # The chart's header says by how much and against what.
    expect(dashboard.by_testid("chart-latest")).to_have_text("Rp 80.000")
    expect(dashboard.by_testid("chart-deviation")).to_have_text(re.compile(r"^\+\d{2}%$"))
    expect(dashboard.by_testid("chart-reference")).to_have_text(re.compile(r"^vs rata-rata 3 bulan Rp \d{2}\.\d{3}$"))

    # The HAP is a line across the chart, not a marker on every tick above it.
    expect(dashboard.chart).to_have_attribute("data-ceiling", "41500")
    expect(dashboard.by_testid("legend-ceiling")).to_be_visible()
    expect(dashboard.by_testid("legend-ceiling")).to_have_text("HAP")
    points = int(dashboard.chart.get_attribute("data-points"))
    assert points > 100
    markers = int(dashboard.chart.get_attribute("data-markers") or 0)
    assert markers < points / 5, f"{markers} markers on {points} ticks"
    assert page.locator("[data-testid=chart-marker][data-kinds~=fired]").count() == 0
    # The calibrated forecasts are drawn ahead of the last tick (GET /api/v1/forecast: 1, 7, 14
    # and 28 reporting days), not the anomaly detector's own steps.
    expect(dashboard.chart).to_have_attribute("data-forecast", "4")
    # Mid-surge the 28-day interval reaches several times the price: the axis cuts it rather
    # than flatten every price into the bottom of the chart (static/js/scale.js).
    expect(dashboard.chart).to_have_attribute("data-band-clipped", "true")

    # The summary: shallots in West Java are in alert, and the crisis criterion is met there.
    summary = dashboard.by_testid("summary")
    in_alert = summary.locator(f'[data-testid=summary-alert][data-commodity={SHALLOT}][data-province="{WEST_JAVA}"]')
    expect(in_alert).to_have_count(1)
    expect(in_alert).to_contain_text("Bawang Merah")
    crisis = summary.locator(f'[data-testid=summary-crisis][data-commodity={SHALLOT}][data-province="{WEST_JAVA}"]')
    expect(crisis).to_have_attribute("data-state", "met")
    expect(summary.locator(f"[data-testid=summary-freshness][data-commodity={SHALLOT}]")).to_contain_text("18 pasar")
    assert dashboard.errors == []


@pytest.mark.timeout(400)
def test_the_reference_is_the_analysts_choice(system, dashboard):
    west_java = open_surge(system, dashboard)
    page = dashboard.page
    expect(west_java).to_have_attribute("data-class", RED)

    # Against the HAP (Rp 41.500): Rp 80.000 is +93%.
    dashboard.by_testid("select-reference").select_option("ceiling")
    expect(dashboard.by_testid("chart-deviation")).to_have_text("+93%")
    expect(dashboard.by_testid("chart-reference")).to_have_text("vs HAP Rp 41.500")
    # A year earlier: the demo data start in September 2023, after Lebaran 2023: no level, and
    # the page says so instead of showing 0%.
    dashboard.by_testid("select-reference").select_option("year")
    expect(west_java).to_have_attribute("data-deviation", "")
    expect(dashboard.by_testid("chart-deviation")).to_be_hidden()
    expect(dashboard.by_testid("chart-reference")).to_contain_text("setahun lalu")
    # The choice is remembered.
    page.reload()
    expect(dashboard.by_testid("select-reference")).to_have_value("year")
    assert dashboard.errors == []


# English words that must not show in Indonesian: every word of the page's English strings that
# its Indonesian strings do not use, and the words of the detectors' English reasons.
ENGLISH_ON_PAGE = """async () => {
  const { STRINGS } = await import("/static/js/i18n.js");
  const words = (texts) => new Set(texts.join(" ").toLowerCase().match(/[a-z]{4,}/g) || []);
  const indonesian = words(Object.values(STRINGS.id));
  const english = [...words(Object.values(STRINGS.en)), "above", "below", "fired", "legal", "expected", "forecast"]
    .filter((word) => !indonesian.has(word));
  const shown = words([document.body.innerText]);
  return english.filter((word) => shown.has(word));
}"""


@pytest.mark.timeout(400)
def test_in_indonesian_nothing_on_the_page_is_english(system, dashboard):
    open_surge(system, dashboard)
    page = dashboard.page
    expect(page.locator("[data-testid=summary-alert]").first).to_be_visible()
    expect(page.locator("[data-testid=alert-item]").first).to_be_visible()
    marker = page.locator("[data-testid=chart-marker]").last
    marker.hover()
    expect(dashboard.by_testid("chart-tooltip")).to_be_visible()
    assert page.evaluate(ENGLISH_ON_PAGE) == []
    assert dashboard.errors == []


# And the other way round: Indonesian words of the page's strings in English mode, leaving out
# names (markets, provinces, cities: "Pasar Agung", "Jawa Barat") and the acronyms both use.
INDONESIAN_ON_PAGE = """async () => {
  const { STRINGS } = await import("/static/js/i18n.js");
  const words = (texts) => new Set(texts.join(" ").toLowerCase().match(/[a-z]{4,}/g) || []);
  const english = words(Object.values(STRINGS.en));
  const catalog = await (await fetch("/api/v1/catalog")).json();
  const names = words([...catalog.markets.flatMap((m) => [m.name, m.city || ""]), ...catalog.provinces.map((p) => p.name)]);
  const indonesian = [...words(Object.values(STRINGS.id))].filter((word) => !english.has(word) && !names.has(word));
  const shown = words([document.body.innerText]);
  return indonesian.filter((word) => shown.has(word));
}"""


@pytest.mark.timeout(400)
def test_in_english_nothing_on_the_page_is_indonesian(system, dashboard):
    open_surge(system, dashboard)
    page = dashboard.page
    dashboard.by_testid("lang-toggle").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("[data-testid=summary-alert]").first).to_contain_text("Shallot")
    expect(page.locator("[data-testid=alert-item]").first).to_be_visible()
    page.locator("[data-testid=chart-marker]").last.hover()
    expect(dashboard.by_testid("chart-tooltip")).to_be_visible()
    assert page.evaluate(INDONESIAN_ON_PAGE) == []
    assert dashboard.errors == []


TRUNCATED_SELECTS = """() => {
  const context = document.createElement("canvas").getContext("2d");
  return [...document.querySelectorAll(".controls select")].flatMap((select) => {
    const style = getComputedStyle(select);
    context.font = `${style.fontSize} ${style.fontFamily}`;
    const text = select.options[select.selectedIndex]?.text || "";
    const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 16;
    return context.measureText(text).width > room ? [text] : [];
  });
}"""


@pytest.mark.timeout(400)
def test_on_a_phone_the_first_screen_is_the_series_and_nothing_is_cut(system, dashboard):
    page = dashboard.page
    page.set_viewport_size({"width": 390, "height": 844})
    open_surge(system, dashboard)
    expect(dashboard.by_testid("chart-deviation")).to_be_visible()

    def inside_first_screen(testid: str) -> bool:
        box = dashboard.by_testid(testid).bounding_box()
        return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["y"] + box["height"] <= 844

    for testid in ("chart-latest", "chart-deviation", "chart"):
        assert inside_first_screen(testid), testid
    assert page.evaluate(TRUNCATED_SELECTS) == []
    # The page does not scroll sideways; the table fits; the alerts have no scroll box of their own.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.evaluate("document.querySelector('table.markets').getBoundingClientRect().right") <= 390
    expect(page.locator("[data-testid=alert-item]").first).to_be_attached()
    feed = page.evaluate("(() => { const f = document.querySelector('#feed'); return [f.scrollHeight, f.clientHeight]; })()")
    assert feed[0] <= feed[1] + 1, feed
    # A tooltip at the bottom edge of the window stays inside it: with a window that ends in the
    # middle of the chart, the tip of a tick drawn below that edge is lifted into the window.
    page.set_viewport_size({"width": 390, "height": 420})
    page.evaluate("window.scrollTo(0, 0)")
    chart = dashboard.chart.bounding_box()
    page.mouse.move(chart["x"] + chart["width"] * 0.4, 410)
    tip = dashboard.by_testid("chart-tooltip")
    expect(tip).to_be_visible()
    box = tip.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= 420 and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    assert dashboard.errors == []


AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
SERIOUS = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
}"""


@pytest.mark.timeout(400)
@pytest.mark.parametrize("size", [(1400, 900), (390, 844)], ids=["desk", "phone"])
def test_axe_finds_no_serious_accessibility_violation(system, dashboard, size):
    page = dashboard.page
    page.set_viewport_size({"width": size[0], "height": size[1]})
    open_surge(system, dashboard)
    expect(page.locator("[data-testid=summary-alert]").first).to_be_visible()
    expect(page.locator("[data-testid=alert-item]").first).to_be_visible()
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(SERIOUS)
    assert violations == [], "\n".join(str(v) for v in violations)
    assert dashboard.errors == []
