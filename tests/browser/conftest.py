"""Browser fixtures: the real system (sitl + serve processes, from tests/e2e) and Debian's chromium.

Every page opened through :func:`open_page` records console errors and uncaught exceptions, so a
test can assert the view ran cleanly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, ViewportSize, sync_playwright

from tests.e2e.conftest import PASSWORD, System, start_system

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--use-fake-ui-for-media-stream",
]
VIEWPORT: ViewportSize = {"width": 1600, "height": 900}


@dataclass
class WatchedPage:
    """A page and every console error / page error it produced."""

    page: Page
    role: str
    errors: list[str] = field(default_factory=list)

    def on_console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.errors.append(f"[{self.role}] console: {msg.text} @ {msg.location.get('url', '')}")

    def on_page_error(self, exc: Exception) -> None:
        self.errors.append(f"[{self.role}] page error: {exc}")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """One running system for the module's tests (starting one takes a while on a busy machine)."""
    yield from start_system(tmp_path_factory.mktemp("system"), vehicles=2, speed_factor=10.0, video=True)


@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    """One chromium for the package: starting it for every module costs seconds on a busy machine."""
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def browser(chromium: Browser) -> Iterator[Browser]:
    """The shared chromium; the pages a module opened close with the module, as if it had its own browser
    (a page left playing the stream of a stopped system would keep retrying while the next module runs)."""
    yield chromium
    for context in list(chromium.contexts):
        context.close()


def open_page(browser: Browser, system: System, role: str, lang: str = "ko") -> WatchedPage:
    """A fresh browser context (own session storage) logged in as ``role`` with the live stream open."""
    context = browser.new_context(viewport=VIEWPORT, locale="ko-KR" if lang == "ko" else "en-GB")
    context.add_init_script(f"localStorage.setItem('dd.lang', '{lang}')")
    page = context.new_page()
    watched = WatchedPage(page, role)
    page.on("console", watched.on_console)
    page.on("pageerror", watched.on_page_error)
    page.goto(system.url + "/")
    page.fill("#login-form input[name=username]", role)
    page.fill("#login-form input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector(".conn[data-state=open]", timeout=20_000)
    return watched
