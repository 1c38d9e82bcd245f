"""The page under its Content-Security-Policy, in chromium against the app served in-process (no
simulator needed): logging in with the form, the event stream opened with a one-use ticket, the
access token refreshed before it ends, a scenario report framed without inline styles being
refused, and signing out revoking the tokens. Any CSP violation is a console error, and fails."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, WebSocket

from dronedispatch.service import create_app
from dronedispatch.store.users import ROLES, hash_password
from tests.api.conftest import PASSWORD, make_settings
from tests.browser.conftest import VIEWPORT, WatchedPage
from tests.fixtures.services import free_tcp_port


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = create_app(make_settings(tmp_path_factory.mktemp("csp")))
    port = free_tcp_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="csp-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the app did not start")
        time.sleep(0.05)
    hashed = hash_password(PASSWORD)
    for role in ROLES:
        app.state.runtime.store.upsert_user(role, hashed, role)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


REPORT = """<!doctype html><html><head><style>h1 { color: rgb(1, 2, 3); }</style>
<script>document.title = 'ran'</script></head><body><h1 style="color: red">Scenario</h1></body></html>"""


def test_page_runs_clean_under_its_csp(served: str, browser: Browser, tmp_path: Path) -> None:
    context = browser.new_context(viewport=VIEWPORT, locale="en-GB")
    page = context.new_page()
    watched = WatchedPage(page, "admin")
    page.on("console", watched.on_console)
    page.on("pageerror", watched.on_page_error)
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url) if isinstance(ws, WebSocket) else None)

    response = page.goto(served + "/")
    assert response is not None
    page.wait_for_selector("#login-form")
    csp = httpx.get(served + "/ui/").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    page.fill("#login-form input[name=username]", "admin")
    page.fill("#login-form input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector(".conn[data-state=open]", timeout=30_000)
    assert sockets and all("token=wst_" in url for url in sockets), sockets
    assert watched.errors == [], "\n".join(watched.errors)

    # the token is renewed before it ends: pretend it ends in 10 s, then make any call
    first = page.evaluate("sessionStorage.getItem('dd.refresh')")
    old_access = page.evaluate("sessionStorage.getItem('dd.token')")
    page.evaluate("sessionStorage.setItem('dd.expires', String(Date.now() + 10000))")
    me = page.evaluate("import('/ui/api.js').then((m) => m.api('/me'))")
    assert me["username"] == "admin"
    assert page.evaluate("sessionStorage.getItem('dd.refresh')") != first
    # a 401 (the access token revoked or broken) is retried once after a refresh
    page.evaluate("sessionStorage.setItem('dd.token', 'broken')")
    assert page.evaluate("import('/ui/api.js').then((m) => m.api('/me'))")["username"] == "admin"
    assert [e for e in watched.errors if "401" not in e] == [], "\n".join(watched.errors)
    watched.errors.clear()  # the browser logs the deliberate 401

    # a scenario report in the tester page's frame: its <style> applies, its script and style="" do not run
    page.evaluate(
        """async (html) => {
        const { reportFrame } = await import('/ui/pages.js');
        const frame = reportFrame('report', html, true);
        const loaded = new Promise((done) => frame.addEventListener('load', done, { once: true }));
        document.body.append(frame);
        await loaded;
        window.__frame = frame;
    }""",
        REPORT,
    )
    color = page.evaluate("getComputedStyle(window.__frame.contentDocument.querySelector('h1')).color")
    assert color == "rgb(1, 2, 3)"
    assert page.evaluate("window.__frame.contentDocument.title") != "ran"
    assert watched.errors == [], "\n".join(watched.errors)
    page.screenshot(path=str(tmp_path / "csp.png"))

    # signing out revokes the session on the server, not only in this tab
    access = page.evaluate("sessionStorage.getItem('dd.token')")
    assert access != old_access
    page.click("#logout")
    page.wait_for_selector("#login-form", state="visible")
    assert httpx.get(served + "/api/v1/me", headers={"Authorization": f"Bearer {access}"}).status_code == 401
    assert page.evaluate("sessionStorage.getItem('dd.refresh')") is None
    assert watched.errors == [], "\n".join(watched.errors)
    context.close()
