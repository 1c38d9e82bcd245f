"""Continuous overwatch in chromium: the video follows the drone on scene without anyone clicking.

The app is served in-process (uvicorn in a thread) beside the simulated fleet (its own thread and
loop, with its camera streams), so the test can drain the battery of the drone on scene. The
incident asks for coverage until closed; once dd-01 must leave, the service launches dd-02, hands
the scene over and sends dd-01 home. The operator's video wall moves "on scene" to dd-02's tile,
which leads the wall and plays; the pilot, who selected dd-01's mission once, finds the panel on
dd-02's mission with dd-02's video playing. Nobody clicks after the first selection.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import uvicorn
import yaml
from playwright.sync_api import Browser, Page, expect

from dronedispatch import cityfiles
from dronedispatch.domain.fleet import FleetConfig
from dronedispatch.runtime import Runtime
from dronedispatch.scenario.broker import free_udp_block, free_udp_port
from dronedispatch.service import create_app
from dronedispatch.sim.runner import SimFleet
from dronedispatch.store.users import ROLES, hash_password
from tests.api.conftest import PASSWORD, make_settings
from tests.browser.conftest import VIEWPORT, WatchedPage
from tests.browser.test_operations import shot
from tests.fixtures.services import free_tcp_port

pytestmark = pytest.mark.browser

T = TypeVar("T")
SPEED = 20.0
#: Beside the G-Tower dock of dd-01; dd-02 comes from Songdo south, about 2 km away.
SCENE = {"lat": 37.3930, "lon": 126.6380}


@dataclass
class Served:
    url: str
    runtime: Runtime
    sim: SimFleet
    sim_loop: asyncio.AbstractEventLoop


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("overwatch-video")
    fleet = cityfiles.load_fleet().sized(2)
    fleet_file = tmp / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump(fleet.model_dump(), allow_unicode=True), "utf-8")
    gcs_port = free_udp_port()
    settings = make_settings(tmp, mavlink=f"udpin:127.0.0.1:{gcs_port}", fleet=fleet_file)
    runtime = Runtime(settings)
    app = create_app(settings, runtime)
    port = free_tcp_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="overwatch-uvicorn", daemon=True)
    thread.start()

    # the simulator in a loop of its own: it talks to the service over MAVLink and RTP only
    sim_loop = asyncio.new_event_loop()
    sim_thread = threading.Thread(target=sim_loop.run_forever, name="overwatch-sim", daemon=True)
    sim_thread.start()
    sim = asyncio.run_coroutine_threadsafe(_start_sim(fleet, gcs_port), sim_loop).result(60)
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the app did not start")
            time.sleep(0.05)
        # plan relief on the simulator's time, as a scenario does: overlaps and ETAs in one clock
        runtime.overwatch.use_clock(lambda: time.monotonic() * SPEED, scale=SPEED, tick_s=0.2)
        hashed = hash_password(PASSWORD)
        for role in ROLES:
            runtime.store.upsert_user(role, hashed, role)
        yield Served(f"http://127.0.0.1:{port}", runtime, sim, sim_loop)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        asyncio.run_coroutine_threadsafe(sim.stop(), sim_loop).result(15)
        sim_loop.call_soon_threadsafe(sim_loop.stop)
        sim_thread.join(timeout=5)
        sim_loop.close()


async def _start_sim(fleet: FleetConfig, gcs_port: int) -> SimFleet:
    sim = SimFleet(
        fleet, speed_factor=SPEED, video=True, gcs_port=gcs_port, vehicle_port_base=free_udp_block(2),
        api_port_base=None, video_port_base=free_udp_block(2),
    )  # fmt: skip
    await sim.start()
    return sim


def _client(served: Served, role: str) -> httpx.Client:
    c = httpx.Client(base_url=served.url, timeout=30)
    r = c.post("/api/v1/auth/token", data={"username": role, "password": PASSWORD})
    r.raise_for_status()
    c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    return c


def _until(predicate: Callable[[], T], what: str, timeout: float) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last {last!r}")


def _open(browser: Browser, served: Served, role: str) -> WatchedPage:
    context = browser.new_context(viewport=VIEWPORT, locale="en-GB")
    context.add_init_script("localStorage.setItem('dd.lang', 'en')")
    page = context.new_page()
    watched = WatchedPage(page, role)
    page.on("console", watched.on_console)
    page.on("pageerror", watched.on_page_error)
    page.goto(served.url + "/")
    page.fill("#login-form input[name=username]", role)
    page.fill("#login-form input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector(".conn[data-state=open]", timeout=20_000)
    return watched


def _frames(page: Page, selector: str) -> int:
    """Frames the video element under ``selector`` has shown (-1: none there, or nothing played yet)."""
    return int(page.evaluate(
        """sel => { const v = document.querySelector(sel);
                    if (!v || v.readyState < 2 || v.videoWidth === 0) return -1;
                    return v.getVideoPlaybackQuality().totalVideoFrames; }""",
        selector,
    ))  # fmt: skip


def _plays(page: Page, selector: str) -> None:
    """The video under ``selector`` shows frames and keeps showing new ones."""
    first = _until(lambda: max(0, _frames(page, selector)), f"frames in {selector}", 30)
    _until(lambda: _frames(page, selector) > first + 1, f"new frames in {selector}", 15)


def test_the_video_follows_the_relief_on_scene_without_a_click(
    served: Served, browser: Browser, tmp_path: Path
) -> None:
    op_api, pilot_api = _client(served, "operator"), _client(served, "pilot")
    _until(lambda: all(d["state"] == "ready" for d in op_api.get("/api/v1/drones").json()), "both drones ready", 60)
    r = op_api.post("/api/v1/incidents", json={"category": "fire", "severity": 4, "location": SCENE,
                                               "description": "warehouse fire, watch it until it is out",
                                               "coverage": {"mode": "until_closed"}})  # fmt: skip
    assert r.status_code == 201, r.text
    incident_id = r.json()["id"]
    r = op_api.post(f"/api/v1/incidents/{incident_id}/dispatch",
                    json={"drone_id": "dd-01", "template": "hover_roi", "params": {"time_on_scene_s": 0}})  # fmt: skip
    assert r.status_code == 201, r.text
    first = r.json()["id"]

    op, pilot = _open(browser, served, "operator"), _open(browser, served, "pilot")
    op.page.click("[data-page=video]")
    wall_first = "#video-drones [data-video-tile]"
    pcard1 = pilot.page.locator(f"#missions [data-mission='{first}']")
    pcard1.locator(".card-head").click()  # the pilot picks dd-01's mission once
    expect(pcard1.locator("[data-video-tile='dd-01']")).to_have_attribute("data-video", "live", timeout=60_000)

    def incident() -> dict:
        return dict(pilot_api.get(f"/api/v1/incidents/{incident_id}").json())

    _until(lambda: incident()["on_scene_drone_id"] == "dd-01", "dd-01 on scene", 90)
    expect(op.page.locator(wall_first).first).to_have_attribute("data-video-tile", "dd-01", timeout=15_000)
    expect(op.page.locator("[data-video-tile='dd-01']")).to_have_attribute("data-on-scene", str(incident_id))
    _plays(pilot.page, f"#missions [data-mission='{first}'] [data-video-tile='dd-01'] video")
    shot(pilot.page, tmp_path, "01-pilot-on-dd-01")

    # dd-01's battery falls: it must leave soon, and the service sends dd-02 to take over
    dd01 = next(v for v in served.sim.vehicles if v.drone_id == "dd-01")
    served.sim_loop.call_soon_threadsafe(dd01.battery_fault, 38.0)
    _until(lambda: incident()["on_scene_drone_id"] == "dd-02", "the hand-over to dd-02", 120)
    coverage = pilot_api.get(f"/api/v1/incidents/{incident_id}/coverage").json()
    [relief] = [m for m in coverage["missions"] if m["drone_id"] == "dd-02"]
    assert relief["relieves_mission_id"] == first, coverage["missions"]

    # operations view: the wall leads with dd-02, marked on scene, playing; dd-01 is no longer on scene
    tile2 = op.page.locator("[data-video-tile='dd-02']")
    expect(op.page.locator(wall_first).first).to_have_attribute("data-video-tile", "dd-02", timeout=15_000)
    expect(tile2).to_have_attribute("data-on-scene", str(incident_id))
    expect(op.page.locator("[data-video-tile='dd-01']")).not_to_have_attribute("data-on-scene", str(incident_id))
    expect(tile2).to_have_attribute("data-video", "live", timeout=30_000)
    _plays(op.page, "#video-drones [data-video-tile='dd-02'] video")
    shot(op.page, tmp_path, "02-wall-on-dd-02")

    # pilot panel: the selection moved to the relief's mission, its video is dd-02's and plays
    pcard2 = pilot.page.locator(f"#missions [data-mission='{relief['id']}']")
    expect(pcard2).to_have_class(re.compile(r"\bselected\b"), timeout=15_000)
    expect(pcard2.locator("[data-video-tile='dd-02']")).to_have_attribute("data-video", "live", timeout=30_000)
    expect(pilot.page.locator("#missions [data-video-tile='dd-01']")).to_have_count(0)
    _plays(pilot.page, f"#missions [data-mission='{relief['id']}'] [data-video-tile='dd-02'] video")
    shot(pilot.page, tmp_path, "03-pilot-on-dd-02")

    # closing the incident ends the coverage: everyone goes home
    r = op_api.post(f"/api/v1/incidents/{incident_id}/close", json={})
    assert r.status_code == 200, r.text
    assert op.errors == [] and pilot.errors == [], op.errors + pilot.errors
    for c in (op_api, pilot_api):
        c.close()
