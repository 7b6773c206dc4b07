"""The dashboard end to end: headless Chromium on the page served by a real web process, with a
real Redis and engine behind it, ticks pushed through the HTTP API.

Every test leaves a screenshot of the page in artifacts/ (the path is printed in the log).
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from base.config import PROJECT_ROOT
from tests.browser import Dashboard, launch, save_screenshot
from tests.system import System, wait_for
from tests import partitions
from tests.test_pipeline import MARKETS, day_ticks, feed
from workers.messages import dashboard_link

COMMODITY = "cabai-rawit-merah"
WEST_JAVA = "32"
SECONDS = 1000  # Playwright timeouts are in milliseconds


def spike_key(market: str) -> str:
    return f"harga-menyimpang/{COMMODITY}/{market}"


@pytest.fixture(scope="module")
def playwright():
    # Module scope: Playwright's sync API keeps an event loop of its own while it runs.
    with sync_playwright() as running:
        yield running


@pytest.fixture
def dashboard(request, playwright, chromium, system, tmp_path, capsys):
    context = launch(playwright, chromium, tmp_path / "chromium-profile")
    page: Page = context.pages[0] if context.pages else context.new_page()
    page.set_default_timeout(15 * SECONDS)
    expect.set_options(timeout=15 * SECONDS)
    board = Dashboard(page, system.url)
    yield board
    try:
        path = save_screenshot(page, f"dashboard-{request.node.name}.png")
        with capsys.disabled():
            print(f"\nscreenshot of the page under test: {path}")
    finally:
        context.close()


def test_the_chart_gains_points_as_ticks_arrive(system, dashboard):
    dashboard.open(COMMODITY, WEST_JAVA, "pasar-cisalak")
    expect(dashboard.connection).to_have_attribute("data-state", "open")
    expect(dashboard.chart).to_have_attribute("data-points", "0")

    # A day at a time, as the markets report: the hub conflates a series' prices that arrive
    # faster than a client reads them, so only paced ticks are each sure to reach the page.
    for day in range(8):
        feed(system, range(day, day + 1))
        expect(dashboard.chart).to_have_attribute("data-points", str(day + 1))
    expect(dashboard.chart).to_have_attribute("data-series", f"{COMMODITY}/pasar-cisalak")
    # Day 7 at pasar-cisalak: 44.500 + 500 (see tests/test_pipeline.day_ticks).
    expect(dashboard.by_testid("chart-latest")).to_have_text("Rp 45.000")
    expect(dashboard.page.locator("[data-testid=market-row]")).to_have_count(len(MARKETS))
    # Eight days are too few for a 3-month average (detectors/references.py MIN_DAYS): the map
    # shows no deviation rather than one against a level that chases the price.
    expect(dashboard.province(WEST_JAVA)).to_have_attribute("data-deviation", "")
    expect(dashboard.by_testid("chart-reference")).to_contain_text("Rata-rata 3 bulan belum ada")
    expect(dashboard.province("31")).to_have_attribute("data-deviation", "")
    assert dashboard.page.locator("[data-testid=map-province]").count() == 38
    assert dashboard.errors == []


def test_a_spike_shows_in_the_alert_feed_on_the_chart_and_on_the_map(system, dashboard, capsys):
    system.wait_processed(feed(system, range(20)))
    dashboard.open(COMMODITY, WEST_JAVA, "pasar-cisalak")
    expect(dashboard.connection).to_have_attribute("data-state", "open")
    expect(dashboard.chart).to_have_attribute("data-points", "20")
    expect(dashboard.feed).to_have_attribute("data-count", "0")
    expect(dashboard.province(WEST_JAVA)).to_have_attribute("data-alerts", "0")

    # An entry error: ten times the usual price at one market.
    response = system.post(day_ticks(20, {"pasar-cisalak": 445000}))
    assert response.status_code == 202, response.text
    spike_id = response.json()["ids"][MARKETS.index("pasar-cisalak")]

    item = dashboard.alert_item(spike_key("pasar-cisalak"))
    expect(item).to_have_attribute("data-state", "firing")
    expect(item).to_have_attribute("data-severity", "warning")
    expect(item).to_have_attribute("data-province", WEST_JAVA)
    # The item says the rule's message (rules/prices.yaml, harga-menyimpang), as Telegram does.
    expect(item.get_by_test_id("alert-text")).to_have_text(re.compile(
        r"^Harga Cabai Rawit Merah di Pasar Cisalak Rp 445\.000, jauh dari pasar lain: periksa entri\."))
    expect(dashboard.feed).to_have_attribute("data-count", "1")
    expect(dashboard.by_testid("feed-firing")).to_be_visible()
    west_java = dashboard.province(WEST_JAVA)
    expect(west_java).to_have_attribute("data-alerts", "1")
    expect(west_java).to_have_class(re.compile(r"\balerting\b"))
    expect(dashboard.province("31")).to_have_attribute("data-alerts", "0")

    # The spike is on the chart, marked as quarantined and as the tick that raised the alert.
    expect(dashboard.chart).to_have_attribute("data-points", "21")
    expect(dashboard.by_testid("chart-latest")).to_have_text("Rp 445.000")
    marker = dashboard.page.locator(f'[data-testid=chart-marker][data-id="{spike_id}"]')
    expect(marker).to_have_attribute("data-kinds", re.compile(r"\balert\b"))
    expect(marker).to_have_attribute("data-kinds", re.compile(r"\bquarantined\b"))
    marker.hover()
    tooltip = dashboard.by_testid("chart-tooltip")
    expect(tooltip).to_be_visible()
    expect(tooltip.locator("li[data-detector=crossmarket]")).to_have_count(1)
    expect(tooltip).to_contain_text("Rp 445.000")
    dashboard.page.mouse.move(0, 0)
    path = save_screenshot(dashboard.page, "dashboard.png")
    with capsys.disabled():
        print(f"\nscreenshot of the dashboard with a firing alert: {path}")

    # Normal prices again: the episode resolves, the map's outline goes, the feed keeps it.
    feed(system, range(21, 23))
    expect(item).to_have_attribute("data-state", "resolved")
    expect(west_java).to_have_attribute("data-alerts", "0")
    expect(dashboard.feed).to_have_attribute("data-count", "1")
    assert dashboard.errors == []


def _alerts_in_stream(system: System) -> int:
    return partitions.length(system.redis, "alerts")


@pytest.mark.timeout(120)
def test_after_the_server_drops_the_page_reconnects_and_shows_what_it_missed(system, dashboard):
    system.wait_processed(feed(system, range(20)))
    dashboard.open(COMMODITY, WEST_JAVA, "pasar-kanoman")
    expect(dashboard.connection).to_have_attribute("data-state", "open")
    expect(dashboard.chart).to_have_attribute("data-points", "20")
    # An episode the page sees live, so it has an alert id to resume from.
    feed(system, range(20, 22), {20: {"pasar-anyar": 455000}})
    expect(dashboard.alert_item(spike_key("pasar-anyar"))).to_have_attribute("data-state", "resolved")
    seen = _alerts_in_stream(system)

    # Ticks accepted while the engine is down, so their alerts fire only once the page is away:
    # kanoman spikes and recovers (an episode no snapshot carries), then kosambi spikes.
    system.kill("engine")
    feed(system, range(22, 24), {22: {"pasar-kanoman": 470000}, 23: {"pasar-kosambi": 450000}})
    system.kill("web")
    expect(dashboard.connection).to_have_attribute("data-state", "closed")
    system.start_process("engine")
    wait_for(lambda: _alerts_in_stream(system) >= seen + 3, 20, "the missed alerts to fire")
    # Still away (closed, or between attempts): nothing of the new alerts has reached the page.
    assert dashboard.connection.get_attribute("data-state") != "open"
    assert dashboard.alert_item(spike_key("pasar-kosambi")).count() == 0

    system.start_process("web")  # the same port
    expect(dashboard.connection).to_have_attribute("data-state", "open", timeout=60 * SECONDS)
    resolved = dashboard.alert_item(spike_key("pasar-kanoman"))
    expect(resolved).to_have_attribute("data-state", "resolved")
    firing = dashboard.alert_item(spike_key("pasar-kosambi"))
    expect(firing).to_have_attribute("data-state", "firing")
    expect(dashboard.feed).to_have_attribute("data-count", "3")
    expect(dashboard.province(WEST_JAVA)).to_have_attribute("data-alerts", "1")
    # The chart has no gap: the ticks of the time away came with the history after the snapshot.
    expect(dashboard.chart).to_have_attribute("data-points", "24")
    expect(dashboard.page.locator("[data-testid=chart-marker][data-kinds~=alert]")).to_have_count(1)
    assert dashboard.errors == []


def test_a_first_visit_opens_on_a_commodity_that_has_prices(system, dashboard):
    # Only chilli has prices; the catalog's first commodity (Beras Medium) has none.
    system.wait_processed(feed(system, range(3)))
    dashboard.page.goto(f"{system.url}/")
    expect(dashboard.by_testid("select-commodity")).to_have_value(COMMODITY)
    expect(dashboard.chart).to_have_attribute("data-series", re.compile(f"^{COMMODITY}/"))
    expect(dashboard.chart).to_have_attribute("data-points", "3")
    assert dashboard.errors == []


def test_a_page_opened_before_any_price_moves_to_the_first_commodity_with_prices(system, dashboard):
    dashboard.page.goto(f"{system.url}/")
    expect(dashboard.connection).to_have_attribute("data-state", "open")
    first = dashboard.by_testid("select-commodity").input_value()
    # Reloading a page that chose for the visitor is still a first visit: it must not stay
    # on an empty commodity because the address now names it.
    dashboard.page.reload()
    expect(dashboard.connection).to_have_attribute("data-state", "open")
    system.wait_processed(feed(system, range(3)))
    expect(dashboard.by_testid("select-commodity")).to_have_value(COMMODITY)
    expect(dashboard.chart).to_have_attribute("data-points", "3")
    assert first != COMMODITY and dashboard.errors == []


def test_the_telegram_link_opens_the_series_of_its_alert(system, dashboard):
    # Two commodities with prices, the shallots first by name: a link the page did not read
    # would open them instead of the chilli of the alert.
    for day in range(3):
        assert system.post(day_ticks(day, commodity="bawang-merah")).status_code == 202
    system.wait_processed(feed(system, range(3)) + 3 * len(MARKETS))
    alert = {"commodity": COMMODITY, "market": "pasar-kanoman", "province": WEST_JAVA}
    link = re.search(r'href="([^"]+)"', dashboard_link(system.url, alert))[1].replace("&amp;", "&")
    # The link Telegram messages carry now, and the query form of links already sent.
    for url in (link, f"{system.url}/?commodity={COMMODITY}&market=pasar-kanoman"):
        dashboard.page.goto("about:blank")
        dashboard.page.goto(url)
        expect(dashboard.by_testid("select-commodity")).to_have_value(COMMODITY)
        expect(dashboard.by_testid("select-market")).to_have_value("pasar-kanoman")
        expect(dashboard.chart).to_have_attribute("data-series", f"{COMMODITY}/pasar-kanoman")
        expect(dashboard.chart).to_have_attribute("data-points", "3")
    assert dashboard.errors == []


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_page_says_when_the_demo_replay_has_ended(system, dashboard):
    import orjson

    system.redis.set("pw:demo:status", orjson.dumps({"state": "running", "from": "2023-09-01", "to": "2024-06-28"}))
    dashboard.open(COMMODITY, WEST_JAVA, "pasar-cisalak")
    banner = dashboard.page.get_by_test_id("demo")
    expect(banner).to_contain_text("2023-09-01")
    expect(banner).to_have_attribute("data-state", "running")
    expect(dashboard.connection).to_have_attribute("data-state", "open")
    finished = {"type": "demo", "state": "finished", "from": "2023-09-01", "to": "2024-06-28"}
    system.redis.set("pw:demo:status", orjson.dumps(finished))
    system.redis.publish("pw:events", orjson.dumps(finished))  # as server/demo.py announces it
    expect(banner).to_have_attribute("data-state", "finished")
    expect(banner).to_contain_text("Demo selesai")


def test_an_operator_uploads_history_and_sees_its_progress_and_report(system, dashboard, tmp_path):
    page = dashboard.page
    dashboard.open(COMMODITY, WEST_JAVA, "pasar-cisalak")
    page.get_by_test_id("import-link").click()
    expect(page).to_have_url(re.compile(r"/static/import\.html$"))
    bad = tmp_path / "two-bad-rows.csv"
    bad.write_text("date,commodity,market,province,price\n2024-02-01,cabai-rawit-merah,pasar-agung,32,-5\n"
                   "2024-02-01,durian,pasar-agung,32,5000\n")
    page.get_by_test_id("import-token").fill(system.admin_token)
    page.get_by_test_id("import-files").set_input_files(
        [str(PROJECT_ROOT / "tests" / "fixtures" / "imports" / "pihps-jabar-cabai-2024-01.csv"), str(bad)])
    page.get_by_test_id("import-submit").click()
    job = page.get_by_test_id("import-job")
    expect(job).to_have_attribute("data-state", "done", timeout=60 * SECONDS)
    expect(page.get_by_test_id("import-progress")).to_have_attribute("value", "1")
    report = page.get_by_test_id("import-report")
    expect(report).to_contain_text("200")  # every price of the PIHPS slice accepted
    refused = page.get_by_test_id("import-refused")
    expect(refused).to_contain_text("not_positive")
    expect(refused).to_contain_text("two-bad-rows.csv:2")
    system.wait_processed(200, timeout=60)


def test_the_dashboard_modules_pass_their_node_unit_tests():
    files = sorted(str(p.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / "static" / "tests").glob("*.test.*js"))
    assert files, "no unit tests under static/tests/"
    result = subprocess.run(["node", "--test", "--test-reporter=tap", *files], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=50)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert re.search(r"^# pass [1-9]", result.stdout, re.M), result.stdout[-2000:]
