"""The dashboard over the demo data's Lebaran 2024 shallot surge (Rp 40.000 to 80.000 in four
weeks), in headless Chromium against a real server: by default every deviation is against the
3-month average, so the surge reads as a surge (about +80%) in red on the map and in the table;
the HAP is a line on the chart, not a marker on every tick above it; the summary lists the
commodity in alert and the crisis criterion."""
from __future__ import annotations

import re
import statistics

import pytest
from playwright.sync_api import expect

from tests.demo_feed import SHALLOT, WEST_JAVA, feed_demo
from tests.test_dashboard_browser import dashboard, playwright  # noqa: F401 - fixtures

RED = "6"  # the map's darkest class (deviationClass: >= +20%)


def open_surge(system, dashboard):
    """The demo's shallot prices up to the surge's peak, and the page on Pasar Agung; West Java's map entry."""
    system.wait_processed(feed_demo(system), timeout=240)
    dashboard.open(SHALLOT, WEST_JAVA, "pasar-agung")
    expect(dashboard.connection).to_have_attribute("data-state", "open")
    return dashboard.province(WEST_JAVA)


@pytest.mark.timeout(400)
def test_the_lebaran_shallot_surge_reads_as_a_surge_against_the_three_month_average(system, dashboard):
    west_java = open_surge(system, dashboard)
    page = dashboard.page
    expect(dashboard.by_testid("select-reference")).to_have_value("avg3m")

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
