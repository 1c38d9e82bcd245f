"""Merging an operator can see and undo, in chromium against the real system: two reports of a
fire merge into one card that lists both (source, distance, time); the operator splits the second
into an incident of its own, which gets its own card and recommendation; its record opens in a tab."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from dronedispatch.domain.incidents import Category, Report, Severity
from dronedispatch.store.db import make_engine
from dronedispatch.store.models import Mission
from dronedispatch.store.repo import Store
from tests.browser.conftest import open_page
from tests.browser.test_operations import shot
from tests.e2e.conftest import System

pytestmark = pytest.mark.browser

PARK = {"lat": 37.3926, "lon": 126.6378}
#: about 250 m north-east of PARK: within the 500 m a fire merges over
NEARBY = {"lat": 37.3942, "lon": 126.6398}


def _report(system: System, location: dict[str, float], text: str) -> int:
    r = httpx.post(
        f"{system.url}/api/v1/ingest/webhook",
        headers={"X-API-Key": "e2e-key"},
        json={"category": "fire", "severity": "moderate", "location": location, "description": text},
        timeout=30,
    )
    assert r.status_code == 202, r.text
    return int(r.json()["id"])


def test_merged_reports_listed_and_split_from_the_card(system: System, browser: Browser, tmp_path: Path) -> None:
    op = open_page(browser, system, "operator", lang="en")
    page = op.page
    first = _report(system, PARK, "smoke over the park")
    assert _report(system, NEARBY, "bins burning by the canal") == first  # merged
    card = page.locator(f"#incidents [data-incident='{first}']")
    merged = card.locator(".merged-reports")
    expect(merged.locator("li")).to_have_count(2, timeout=15_000)
    expect(merged.locator("li").nth(0)).to_contain_text("0 m")
    expect(merged.locator("li").nth(1)).to_contain_text("bins burning by the canal")
    distance = merged.locator("li").nth(1).locator(".dist").inner_text()
    assert 200 <= int(distance.strip(" ·m")) <= 300, distance
    expect(merged.locator("li").nth(0).locator("[data-action=split]")).to_have_count(0)  # the first keeps the place
    shot(page, tmp_path, "01-merged-reports")

    merged.locator("li").nth(1).locator("[data-action=split]").click()
    page.locator("dialog[data-testid=split] [data-role=confirm]").click()
    cards = page.locator("#incidents [data-incident]")
    expect(cards).to_have_count(2, timeout=15_000)
    new_card = page.locator(f"#incidents [data-incident]:not([data-incident='{first}'])")
    expect(new_card).to_contain_text("bins burning by the canal")
    expect(new_card).to_have_attribute("data-status", "open")
    expect(new_card.locator("[data-recommended]")).to_be_visible(timeout=15_000)  # dispatchable at once
    expect(card.locator(".merged-reports")).to_have_count(0, timeout=15_000)  # one report left there
    shot(page, tmp_path, "02-after-split")

    # the record of the first incident opens in a new tab
    with page.context.expect_page() as tab_info:
        card.locator("[data-action=record]").click()
    tab = tab_info.value
    tab.wait_for_load_state()
    expect(tab.locator("h1")).to_contain_text(f"Incident record #{first}", timeout=15_000)
    new_id = new_card.get_attribute("data-incident")
    expect(tab.locator("body")).to_contain_text(f"split into incident #{new_id}")
    assert op.errors == [], op.errors


def test_an_overwatched_incident_shows_its_coverage_timeline(system: System, browser: Browser, tmp_path: Path) -> None:
    """Two drones took turns over the scene (a hand-over with overlap, then one after a gap): the card draws
    each drone's time on scene, the gap, and counts them (the coverage asked for is over, so the
    running service plans no relief for it)."""
    now = datetime.now(UTC)
    engine = make_engine(system.database.url)
    try:
        store = Store(engine)
        report = Report(source="webhook", source_ref="cov-1", category=Category.FIRE, severity=Severity.SEVERE,
                        lat=37.5310, lon=126.6430, observed_at=now - timedelta(minutes=50),
                        description="lake fire")  # fmt: skip
        incident = store.create_incident(report, report.lat or 0.0, report.lon or 0.0)
        assert incident.id is not None
        store.update_incident(incident.id, coverage_mode="duration", coverage_s=1800.0,
                              coverage_until=now - timedelta(minutes=5))  # fmt: skip
        turns = [("dd-03", 45, 25), ("dd-07", 26, 12), ("dd-03", 8, 6)]  # minutes ago: on scene, left
        for drone, came, left in turns:
            store.add_mission(Mission(
                incident_id=incident.id, drone_id=drone, sysid=3 if drone == "dd-03" else 7, template="hover_roi",
                created_by="operator", state="completed", created_at=now - timedelta(minutes=came + 3),
                on_scene_at=now - timedelta(minutes=came), left_scene_at=now - timedelta(minutes=left),
                ended_at=now - timedelta(minutes=left - 2)
            ))  # fmt: skip
    finally:
        engine.dispose()

    op = open_page(browser, system, "operator", lang="en")
    card = op.page.locator(f"#incidents [data-incident='{incident.id}']")
    block = card.locator(".coverage[data-coverage-mode=duration]")
    expect(block).to_contain_text("Continuous overwatch", timeout=15_000)
    strip = block.locator(f".coverage-strip[data-coverage='{incident.id}']")
    expect(strip.locator(".cov-drone")).to_have_count(3, timeout=15_000)
    expect(strip.locator(".cov-gap")).to_have_count(1)
    expect(block).to_contain_text("hand-overs: 2 · gaps: 1")  # dd-03 → dd-07 with overlap, dd-07 → dd-03 after a gap
    assert [strip.locator(".cov-drone").nth(k).inner_text() for k in range(3)] == ["dd-03", "dd-07", "dd-03"]
    shot(op.page, tmp_path, "coverage-timeline")
    assert op.errors == [], op.errors
