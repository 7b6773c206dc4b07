"""Screenshots of the dashboard during the demo's Lebaran 2024 shallot surge, at a desk and on a
phone: ``python3 -m tests.surge_screenshots [DIR]`` (default docs/) writes
``dashboard-surge.png`` (1400x900) and ``dashboard-surge-phone.png`` (390x844).

A real system (Redis, engine, web) fed the demo's shallot prices up to 17 April 2024, as
tests/test_dashboard_references.py does, and Debian's headless Chromium (tests/browser.py).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from base.config import PROJECT_ROOT
from tests.browser import Dashboard, _shrink, ensure_chromium, launch, ARTIFACTS
from tests.demo_feed import SHALLOT, WEST_JAVA, feed_demo
from tests.system import System

SIZES = {"dashboard-surge.png": (1400, 900), "dashboard-surge-phone.png": (390, 844)}


def capture(out_dir: Path) -> list[Path]:
    executable = ensure_chromium(ARTIFACTS / "chromium-install.log")
    saved = []
    with tempfile.TemporaryDirectory(prefix="pasarwatch-surge-") as tmp:
        system = System(Path(tmp)).start()
        try:
            system.wait_processed(feed_demo(system), timeout=240)
            with sync_playwright() as playwright:
                context = launch(playwright, executable, Path(tmp) / "chromium-profile")
                page = context.pages[0] if context.pages else context.new_page()
                board = Dashboard(page, system.url)
                for name, (width, height) in SIZES.items():
                    page.set_viewport_size({"width": width, "height": height})
                    board.open(SHALLOT, WEST_JAVA, "pasar-agung")
                    expect(board.province(WEST_JAVA)).to_have_attribute("data-class", "6", timeout=30_000)
                    expect(page.locator("[data-testid=summary-alert]").first).to_be_visible(timeout=30_000)
                    # The fill changes with a CSS transition: wait until it has ended in red.
                    page.wait_for_function(
                        f"getComputedStyle(document.querySelector('[data-testid=map-province][data-code=\"{WEST_JAVA}\"]'))"
                        ".fill === 'rgb(178, 24, 43)'", timeout=30_000)
                    page.mouse.move(0, 0)
                    path = out_dir / name
                    page.screenshot(path=str(path))
                    _shrink(path)
                    saved.append(path)
                if board.errors:
                    raise RuntimeError(f"page errors: {board.errors}")
                context.close()
        finally:
            system.stop()
    return saved


if __name__ == "__main__":
    for written in capture(Path(sys.argv[1]) if len(sys.argv) > 1 else PROJECT_ROOT / "docs"):
        print(written)
