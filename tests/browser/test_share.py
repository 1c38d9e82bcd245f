"""A share link opened on a phone-sized screen in chromium: the incident on a small map and the live
video of the drone flying it, without an account; the video follows when another drone takes over;
a revoked link shows the refusal page. The link is made and revoked in the operations view's
share dialog (web/share-links.js). The aborted flight then shows in the public flight log,
redacted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Request, ViewportSize, expect

from tests.browser.conftest import WatchedPage, open_page
from tests.e2e.conftest import System, start_system, wait_for

pytestmark = pytest.mark.browser

PARK = {"lat": 37.3926, "lon": 126.6378}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The browser tests' system with the public flight log on, so the flights flown here show up there."""
    yield from start_system(tmp_path_factory.mktemp("system"), vehicles=2, speed_factor=10.0, video=True,
                            extra_env={"DD_PUBLIC_FLIGHT_LOG": "true"})  # fmt: skip


PHONE: ViewportSize = {"width": 390, "height": 844}

PLAYING = """() => { const v = document.querySelector('#video');
    return !!v && v.readyState >= 2 && v.videoWidth > 0 && v.currentTime > 0
        && v.getVideoPlaybackQuality().totalVideoFrames > 0; }"""


FRAMES = "document.querySelector('#video').getVideoPlaybackQuality().totalVideoFrames"


def _frames(page: Page) -> int:
    return int(page.evaluate(f"() => {FRAMES}"))


def _fly(system: System, operator: httpx.Client, incident_id: int, drone_id: str) -> int:
    r = operator.post(f"/api/v1/incidents/{incident_id}/dispatch", json={"drone_id": drone_id})
    assert r.status_code == 201, r.text
    mission_id = int(r.json()["id"])
    system.watch(operator, mission_id).wait("enroute", "on_scene", timeout=120)
    return mission_id


def test_share_link_on_a_phone(system: System, browser: Browser, tmp_path: Path) -> None:
    operator = system.client("operator")
    pilot = system.client("pilot")
    report = {"category": "fire", "severity": "severe", "location": PARK, "description": "smoke"}
    r = httpx.post(f"{system.url}/api/v1/ingest/webhook", headers={"X-API-Key": "e2e-key"}, json=report, timeout=30)
    assert r.status_code == 202, r.text
    incident_id = int(r.json()["id"])
    first = _fly(system, operator, incident_id, "dd-01")

    # the pilot makes the link from the incident card's share dialog (lifetime 1 h)
    view = open_page(browser, system, "pilot", lang="en")
    view.page.locator(f"#incidents [data-incident='{incident_id}'] [data-action=share]").click(timeout=15_000)
    dialog = view.page.locator("dialog[data-testid=share-links]")
    dialog.locator("input[name=hours]").fill("1")
    dialog.locator("[data-action=create-share]").click()
    made = dialog.locator("input[data-share-url]")
    expect(made).to_be_visible()
    link = made.input_value()
    share = {"id": made.get_attribute("data-share-url") or "", "url": link.removeprefix(system.url)}
    assert link.startswith(f"{system.url}/share/")
    token = share["url"].removeprefix("/share/")
    expect(dialog.locator(f"[data-share='{share['id']}'][data-state=active]")).to_be_visible()
    view.page.screenshot(path=str(tmp_path / "share-dialog.png"))
    listed = pilot.get(f"/api/v1/incidents/{incident_id}/shares").json()
    assert [(s["id"], s["created_by"]) for s in listed] == [(share["id"], "pilot")]

    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = context.new_page()
    watched = WatchedPage(page, "field")
    page.on("console", watched.on_console)
    page.on("pageerror", watched.on_page_error)
    requests: list[Request] = []
    page.on("request", lambda req: requests.append(req))
    page.goto(system.url + share["url"])

    expect(page.locator("#category")).to_have_text("Fire")
    expect(page.locator("#drone")).to_have_attribute("data-drone", "dd-01", timeout=15_000)
    expect(page.locator(".leaflet-districts-pane path")).not_to_have_count(0)  # the offline basemap
    expect(page.locator(".leaflet-overlay-pane path")).to_have_count(2)  # the incident and the drone
    page.wait_for_function(PLAYING, timeout=60_000)
    expect(page.locator("#video-box")).to_have_attribute("data-video", "live")
    before = _frames(page)
    page.wait_for_function(f"() => {FRAMES} > {before}", timeout=15_000)  # frames keep coming
    # phone-first: the video spans the screen's width, and nothing scrolls sideways
    box = page.locator("#video").bounding_box()
    assert box is not None and box["width"] >= PHONE["width"] - 2
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    # no controls, no other incidents
    assert page.locator("button:not(.leaflet-control-zoom-in):not(.leaflet-control-zoom-out)").count() == 0
    page.screenshot(path=str(tmp_path / "share-phone-live.png"))

    # the first flight is aborted and another drone takes over: the page negotiates the new drone's video
    r = pilot.post(f"/api/v1/missions/{first}/commands", json={"command": "abort"})
    assert r.status_code == 200, r.text
    wait_for(lambda: operator.get(f"/api/v1/missions/{first}").json()["state"] == "aborted", 60, "the abort", system)
    _fly(system, operator, incident_id, "dd-02")
    expect(page.locator("#drone")).to_have_attribute("data-drone", "dd-02", timeout=20_000)
    page.wait_for_function(PLAYING, timeout=60_000)
    assert not watched.errors, watched.errors

    # the token travels only in the page's own path and its token-scoped calls, never as a referrer
    for req in requests:
        path = req.url.removeprefix(system.url)
        if token in req.url:
            assert path == share["url"] or path.startswith(f"/share-api/{token}"), req.url
        assert token not in (req.headers.get("referer") or ""), req.url

    # revoked from the dialog: the open page turns into the refusal by itself
    dialog.locator(f"[data-share='{share['id']}'] [data-action=revoke-share]").click()
    expect(dialog.locator(f"[data-share='{share['id']}'][data-state=revoked]")).to_be_visible()
    assert not view.errors, view.errors
    expect(page.locator("body[data-share=revoked]")).to_be_visible(timeout=15_000)
    expect(page.locator("h1")).to_have_text("This link was revoked.")
    assert page.locator("video").count() == 0
    page.screenshot(path=str(tmp_path / "share-phone-revoked.png"))
    # and opened afresh, too
    again = context.new_page()
    response = again.goto(system.url + share["url"])
    assert response is not None and response.status == 410
    expect(again.locator("h1")).to_have_text("This link was revoked.")
    context.close()

    # the aborted flight is in the public flight log, with the track the service recorded, and nothing of
    # who flew it, with which drone, or the report's words
    def aborted_flight_listed() -> list[dict[str, Any]]:
        rows = httpx.get(f"{system.url}/public/flights.json", timeout=30).json()["rows"]
        return [r for r in rows if len(r["track"]) >= 2]

    rows = wait_for(aborted_flight_listed, 60, "the aborted flight in the public log", system)
    assert isinstance(rows, list)
    assert rows[0]["purpose"] == "Fire response" and rows[0]["district"] == "songdo"
    public = httpx.get(f"{system.url}/public/flights", timeout=30).text + str(rows)
    for secret in ("dd-01", "dd-02", "pilot", "operator", "smoke", "e2e", token):
        assert secret not in public, secret
    operator.close()
    pilot.close()
