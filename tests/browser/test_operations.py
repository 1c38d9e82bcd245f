"""The operations view driven in chromium against the real system: an incident arrives, the
operator dispatches it from its card, the drone flies on the map with its camera picture on the
card, the pilot watches its live video, repositions it by clicking the map and brings it home."""

from __future__ import annotations

import math
import os
import re
import signal
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import WatchedPage, open_page
from tests.e2e.conftest import System, wait_for

pytestmark = pytest.mark.browser

#: Songdo Central Park, a few hundred metres from the G-Tower dock of dd-01.
PARK = {"lat": 37.3926, "lon": 126.6378}


def shot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / "screenshots" / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(path))
    return path


def drone_position(page: Page, drone_id: str) -> tuple[float, float]:
    marker = page.locator(f".drone-icon[data-drone='{drone_id}']")
    return float(marker.get_attribute("data-lat") or "nan"), float(marker.get_attribute("data-lon") or "nan")


def moved_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    dlat = (b[0] - a[0]) * 111_320
    dlon = (b[1] - a[1]) * 111_320 * math.cos(math.radians(a[0]))
    return math.hypot(dlat, dlon)


def test_incident_dispatch_fly_and_return(system: System, browser: Browser, tmp_path: Path) -> None:
    op: WatchedPage = open_page(browser, system, "operator")
    page = op.page
    # both simulated drones show up ready, in the table and on the map
    expect(page.locator("#drones tr[data-state=ready]")).to_have_count(2, timeout=60_000)
    expect(page.locator(".drone-icon[data-drone='dd-01']")).to_be_visible()
    shot(page, tmp_path, "01-operator-ready")

    # an outside system reports an incident; its card appears live, with a recommendation
    r = httpx.post(
        f"{system.url}/api/v1/ingest/webhook",
        headers={"X-API-Key": "e2e-key"},
        json={
            "category": "fire",
            "severity": "extreme",
            "location": PARK,
            "description": "연기 감지 · smoke at the park",
        },
        timeout=30,
    )
    assert r.status_code == 202, r.text
    incident_id = r.json()["id"]
    card = page.locator(f"#incidents [data-incident='{incident_id}']")
    expect(card).to_be_visible(timeout=15_000)
    expect(card.locator(".cat")).to_have_text("화재")
    expect(card.locator("[data-recommended='dd-01']")).to_be_visible(timeout=15_000)
    dispatch = card.locator("[data-action=dispatch]")
    expect(dispatch).to_be_enabled()
    shot(page, tmp_path, "02-incident-card")

    # one click dispatches the recommended drone; its mission appears and the drone leaves the dock
    start = drone_position(page, "dd-01")
    dispatch.click()
    mission_card = page.locator("#missions [data-drone='dd-01']").first
    expect(mission_card).to_be_visible(timeout=15_000)
    mission_id = int(mission_card.get_attribute("data-mission") or "0")
    expect(card).to_have_attribute("data-status", "dispatched", timeout=15_000)
    page.wait_for_function(
        """([id, lat, lon]) => {
            const m = document.querySelector(`.drone-icon[data-drone='${id}']`);
            if (!m) return false;
            const dy = (+m.dataset.lat - lat) * 111320, dx = (+m.dataset.lon - lon) * 88000;
            return Math.hypot(dx, dy) > 30;
        }""",
        arg=["dd-01", start[0], start[1]],
        timeout=90_000,
    )
    assert moved_m(start, drone_position(page, "dd-01")) > 30, "the drone moves on the map"
    # the card shows a picture from the drone's camera
    page.wait_for_function(
        """id => { const img = document.querySelector(`[data-incident='${id}'] img[data-snapshot]`);
                   return img && img.complete && img.naturalWidth > 0; }""",
        arg=incident_id,
        timeout=60_000,
    )
    expect(page.locator(".leaflet-overlay-pane path")).not_to_have_count(0)  # planned route and track drawn
    shot(page, tmp_path, "03-drone-flying")

    # the pilot, in a second browser context, sees the mission with telemetry and sends RTL
    pilot = open_page(browser, system, "pilot")
    ppage = pilot.page
    pcard = ppage.locator(f"#missions [data-mission='{mission_id}']")
    expect(pcard).to_be_visible(timeout=15_000)
    expect(pcard.locator(".tele")).to_contain_text("배터리")
    expect(pcard).to_have_attribute("data-state", "on_scene", timeout=90_000)
    expect(pcard.locator("[data-progress]")).to_be_visible()
    assert ppage.locator(f"#incidents [data-incident='{incident_id}'] [data-action=dispatch]").count() == 0, (
        "a pilot has no dispatch buttons"
    )
    # the selected mission shows the drone's live video (WebRTC from the service)
    pcard.locator(".card-head").click()
    ppage.wait_for_function(
        """id => { const v = document.querySelector(`#missions [data-mission='${id}'] [data-video-tile] video`);
                   return v && v.readyState >= 2 && v.videoWidth > 0 && v.currentTime > 0; }""",
        arg=mission_id,
        timeout=60_000,
    )
    expect(pcard.locator("[data-video-tile]")).to_have_attribute("data-video", "live")
    shot(ppage, tmp_path, "04-pilot-on-scene")

    # reposition: pick a point on the map a few hundred metres away; the drone flies there and holds
    pcard.locator("[data-command=reposition]").click()
    box = ppage.locator(".drone-icon[data-drone='dd-01']").bounding_box()
    assert box is not None
    # north-west of the park, clear of the demo's prohibited zones (south-east lies a TFR)
    ppage.mouse.click(box["x"] + box["width"] / 2 - 110, box["y"] + box["height"] / 2 - 70)
    dialog = ppage.locator("dialog[data-testid=command]")
    expect(dialog).to_be_visible()
    found = re.search(r"(\d+\.\d+), (\d+\.\d+)", dialog.inner_text())
    assert found, dialog.inner_text()
    target = (float(found[1]), float(found[2]))
    dialog.locator("[data-role=confirm]").click()
    operator_api = system.client("operator")

    def near_target() -> bool:
        refused = ppage.locator(".toast.warning")
        if refused.count():
            raise AssertionError(f"reposition refused: {refused.first.inner_text()}")
        d = next(x for x in operator_api.get("/api/v1/drones").json() if x["id"] == "dd-01")
        here = (d["position"]["lat"], d["position"]["lon"])
        return d["mode"] == "AUTO.LOITER" and moved_m(here, target) < 25

    wait_for(near_target, 90, "the drone holding at the picked point", system)
    expect(pcard).to_have_attribute("data-state", "on_scene")
    shot(ppage, tmp_path, "04b-pilot-repositioned")
    pcard.locator("[data-command=rtl]").click()
    expect(dialog).to_be_visible()
    shot(ppage, tmp_path, "05-pilot-confirm-rtl")
    dialog.locator("[data-role=confirm]").click()
    expect(pcard).to_have_attribute("data-state", "returning", timeout=15_000)
    shot(ppage, tmp_path, "06-pilot-returning")

    # home and landed: the mission completes in both views
    expect(pcard).to_have_attribute("data-state", "completed", timeout=120_000)
    expect(page.locator(f"#missions [data-mission='{mission_id}']")).to_have_attribute(
        "data-state", "completed", timeout=15_000
    )
    shot(ppage, tmp_path, "07-pilot-completed")
    shot(page, tmp_path, "08-operator-completed")

    # the operator closes the incident with an outcome; the card leaves the queue
    card.locator("[data-action=close]").click()
    close = page.locator("dialog[data-testid=close]")
    close.locator("select[name=outcome]").select_option("resolved")
    close.locator("[data-role=confirm]").click()
    expect(card).to_have_count(0, timeout=15_000)
    closed = httpx.get(
        f"{system.url}/api/v1/incidents/{incident_id}", headers=system.client("operator").headers, timeout=30
    ).json()
    assert closed["status"] == "closed" and closed["outcome"] == "resolved"

    assert not op.errors + pilot.errors, "\n".join(op.errors + pilot.errors)


def test_language_pages_and_alert_banner(system: System, browser: Browser, tmp_path: Path) -> None:
    admin = open_page(browser, system, "admin", lang="en")
    page = admin.page
    expect(page.locator("[data-page=ops]")).to_have_text("Operations")
    expect(page.locator("#drones tr")).to_have_count(2, timeout=60_000)
    # Korean at the press of a button, everywhere on the page
    page.click("#lang")
    expect(page.locator("[data-page=ops]")).to_have_text("운영")
    expect(page.locator("#drones tr").first).to_contain_text("대기", timeout=60_000)
    page.click("#lang")

    # video wall: a tile per drone, with a clear state when the server has no video for it
    page.click("[data-page=video]")
    expect(page.locator("[data-video-tile]")).to_have_count(2)
    expect(page.locator("[data-video-tile='dd-01'] .tile-status")).not_to_be_empty()
    shot(page, tmp_path, "10-video-wall")
    # tester page: the shipped scenarios, each ready to start (a run itself is tested in tests/scenario)
    page.click("[data-page=tester]")
    expect(page.locator("[data-scenario='songdo-central-park'] [data-action=start]")).to_be_enabled()
    shot(page, tmp_path, "10b-tester")
    # admin page: accounts and drone maintenance
    page.click("[data-page=admin]")
    expect(page.locator("#admin-body tr[data-user=pilot]")).to_be_visible()
    page.locator("#admin-body tr[data-drone='dd-02'] button").click()
    expect(page.locator("#admin-body tr[data-drone='dd-02']")).to_contain_text("maintenance", timeout=15_000)
    shot(page, tmp_path, "11-admin")
    page.click("[data-page=ops]")
    expect(page.locator("#drones tr[data-drone='dd-02']")).to_have_attribute("data-state", "maintenance")

    # the vehicles fall silent (simulator frozen): a link-lost banner per drone flashes until acknowledged
    os.kill(system.sitl.pid, signal.SIGSTOP)
    try:
        banner = page.locator("#alerts .alert[data-code=link_lost][data-drone='dd-01']")
        expect(banner).to_be_visible(timeout=30_000)
        expect(banner).to_have_class(re.compile(r"\bcritical\b.*\bflashing\b"))
        expect(page.locator("#conn")).to_have_attribute("data-state", "open")
        shot(page, tmp_path, "12-alert-banner")
    finally:
        os.kill(system.sitl.pid, signal.SIGCONT)
    # the link comes back: the banner stops flashing but stays until someone acknowledges it
    expect(banner).not_to_have_class(re.compile(r"\bflashing\b"), timeout=30_000)
    banner.locator("[data-action=ack]").click()
    expect(banner).to_have_count(0)
    assert not admin.errors, "\n".join(admin.errors)


#: What a browser logs while the service is down: refused connections, nothing else.
NETWORK_DOWN = re.compile(r"ERR_CONNECTION_(REFUSED|RESET)|ERR_EMPTY_RESPONSE|WebSocket connection to .* failed")


def test_reconnects_after_a_service_restart(system: System, browser: Browser, tmp_path: Path) -> None:
    op = open_page(browser, system, "operator")
    page = op.page
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    expect(page.locator("#drones tr")).to_have_count(2, timeout=60_000)
    before = len(op.errors)

    system.restart_serve()
    # the view notices, says so, and comes back by itself with a fresh snapshot
    expect(page.locator(".conn[data-state=open]")).to_be_visible(timeout=60_000)
    expect(page.locator("#conn-banner")).to_be_hidden()
    assert sockets, "a new event stream was opened after the restart"
    r = system.client("operator").post(
        "/api/v1/incidents",
        json={"category": "crime", "severity": 3, "location": PARK, "description": "after the restart"},
    )
    assert r.status_code == 201, r.text
    expect(page.locator(f"#incidents [data-incident='{r.json()['id']}']")).to_be_visible(timeout=15_000)
    shot(page, tmp_path, "20-after-restart")
    unexpected = [e for e in op.errors[before:] if not NETWORK_DOWN.search(e)]
    assert not op.errors[:before] + unexpected, "\n".join(op.errors[:before] + unexpected)
