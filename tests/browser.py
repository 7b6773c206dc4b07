"""Headless Chromium for the dashboard's end-to-end tests.

The browser is Debian's ``chromium`` package driven by Playwright's Python package with
``executable_path`` set: Playwright's own browser downloads cannot be fetched here, a Debian
package can. :func:`ensure_chromium` installs it on a fresh machine (as root, with apt-get).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from base.config import PROJECT_ROOT
from server.redis_process import free_port
from tests.system import wait_for

if TYPE_CHECKING:  # conftest imports this module; only the browser tests need Playwright itself
    from playwright.sync_api import BrowserContext, Locator, Page, Playwright

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT_ROOT / "artifacts"
# Updating the package lists and installing chromium with its libraries on a slow mirror.
APT_UPDATE_TIMEOUT = 300.0
APT_INSTALL_TIMEOUT = 900.0
# Nothing in the background that reaches beyond 127.0.0.1 or makes a run differ from the last.
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces we may not have
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1400, "height": 900}


class ChromiumUnavailable(RuntimeError):
    pass


def ensure_chromium(log_path: Path) -> Path:
    """The Chromium executable; installs Debian's package first when it is missing and we are root."""
    if CHROMIUM.exists():
        return CHROMIUM
    apt_get = shutil.which("apt-get")
    if os.geteuid() != 0 or apt_get is None:
        raise ChromiumUnavailable(
            f"{CHROMIUM} is missing and cannot be installed here (needs root and apt-get); "
            "install it with: apt-get install -y --no-install-recommends chromium")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [([apt_get, "update"], APT_UPDATE_TIMEOUT),
             ([apt_get, "install", "-y", "--no-install-recommends", "chromium"], APT_INSTALL_TIMEOUT)]
    with log_path.open("ab") as log:
        for command, timeout in steps:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            try:
                result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        stdin=subprocess.DEVNULL, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise ChromiumUnavailable(f"{' '.join(command)} took more than {timeout:.0f}s; "
                                          f"see {log_path}") from None
            if result.returncode != 0:
                raise ChromiumUnavailable(f"{' '.join(command)} exited {result.returncode}; see {log_path}")
    if not CHROMIUM.exists():
        raise ChromiumUnavailable(f"apt-get installed chromium but {CHROMIUM} is still missing; see {log_path}")
    return CHROMIUM


def launch(playwright: Playwright, executable: Path, user_data_dir: Path) -> BrowserContext:
    """A fresh headless Chromium with its own profile (no state shared between tests)."""
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=str(executable), headless=True, args=LAUNCH_ARGS,
        viewport=VIEWPORT)


def save_screenshot(page: Page, name: str) -> Path:
    """Saves the page as ``artifacts/<name>`` (git-ignored, kept by CI) and returns the path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


class Dashboard:
    """The page under test, read through its ``data-testid`` hooks (docs/dashboard.md)."""

    def __init__(self, page: Page, base_url: str):
        self.page = page
        self.base_url = base_url
        self.errors: list[str] = []  # uncaught exceptions and unhandled rejections in the page
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def open(self, commodity: str, province: str, market: str) -> None:
        self.page.goto(f"{self.base_url}/#commodity={commodity}&province={province}&market={market}")

    def by_testid(self, testid: str) -> Locator:
        return self.page.locator(f"[data-testid={testid}]")

    @property
    def connection(self) -> Locator:
        return self.by_testid("connection")

    @property
    def chart(self) -> Locator:
        return self.by_testid("chart")

    @property
    def feed(self) -> Locator:
        return self.by_testid("alert-feed")

    def alert_item(self, key: str) -> Locator:
        return self.page.locator(f'[data-testid=alert-item][data-key="{key}"]')

    def province(self, code: str) -> Locator:
        return self.page.locator(f'[data-testid=map-province][data-code="{code}"]')


# -- the README screenshot: `python3 -m tests.browser docs/screenshot.png` -------------------------

def capture_demo(out: Path, seconds: float = 20.0) -> None:
    """Runs ``pasarwatch up --demo`` on a free port with its own data directory, opens the page
    as a first-time visitor would, lets the demo feed play for ``seconds`` and saves a screenshot."""
    from playwright.sync_api import sync_playwright

    executable = ensure_chromium(ARTIFACTS / "chromium-install.log")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="pasarwatch-demo-") as tmp:
        env = {**os.environ, "PASARWATCH_PORT": str(port), "PASARWATCH_HOST": "127.0.0.1",
               "PASARWATCH_DATA_DIR": tmp, "PYTHONPATH": str(PROJECT_ROOT)}
        env.pop("REDIS_URL", None)  # the launcher's own Redis, in the data directory
        with (Path(tmp) / "up.log").open("wb") as log:
            up = subprocess.Popen([sys.executable, "-m", "server.cli", "up", "--demo"], env=env,
                                  cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            with sync_playwright() as playwright:
                context = launch(playwright, executable, Path(tmp) / "chromium-profile")
                page = context.pages[0] if context.pages else context.new_page()
                wait_for(lambda: _responds(url + "/healthz"), 60, "pasarwatch up to serve")
                page.goto(url + "/")
                board = Dashboard(page, url)
                board.connection.and_(page.locator("[data-state=open]")).wait_for(timeout=30_000)
                started = time.monotonic()
                # The demo plays on: wait for its first alerts, then for the chart to fill for a while.
                page.locator("[data-testid=alert-item]").first.wait_for(timeout=60_000)
                page.wait_for_timeout(max(0.0, seconds - (time.monotonic() - started)) * 1000)
                page.mouse.move(0, 0)
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out))
                _shrink(out)
                if board.errors:
                    raise RuntimeError(f"page errors: {board.errors}")
                context.close()
        finally:
            os.killpg(up.pid, signal.SIGINT)  # Ctrl-C: the launcher stops its parts, Redis last
            up.wait(timeout=60)


def _shrink(png: Path) -> None:
    """Quantises the PNG in place when pngquant is installed (Debian package ``pngquant``)."""
    if shutil.which("pngquant"):
        subprocess.run(["pngquant", "--quality=70-95", "--speed=1", "--force", "--output", str(png), str(png)],
                       check=True, timeout=60)


def _responds(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    capture_demo(Path(sys.argv[1]) if len(sys.argv) > 1 else PROJECT_ROOT / "docs" / "screenshot.png")
