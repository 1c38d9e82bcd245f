"""GET/POST /api/v1/scenarios: testers start a shipped scenario in the background and read its reports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from dronedispatch.api.routes import scenarios
from dronedispatch.api.security import issue_token
from dronedispatch.runtime import Runtime
from dronedispatch.scenario.service import ScenarioRuns
from dronedispatch.service import create_app
from dronedispatch.settings import Settings
from dronedispatch.store.db import migrate

QUICK = """\
name: quick
description: "One drone, one incident next to its dock."
speed_factor: 30
duration: 6m
fleet:
  docks: [{id: gtower, name_ko: "G타워", name_en: "G-Tower", lat: 37.3918, lon: 126.6393, alt: 5}]
  drones: [{id: q-01, sysid: 1, dock: gtower, cruise_speed: 15}]
operator: {dispatch: auto, params: {time_on_scene_s: 30}}
incidents:
  - {id: park, at: 5s, via: webhook, category: traffic_accident, severity: 3, location: {lat: 37.3926, lon: 126.6378}}
expect:
  - {check: on_scene, incident: park, within: 3m}
  - {check: nothing_lost}
"""


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    shipped = tmp_path / "scenarios"
    shipped.mkdir()
    (shipped / "quick.yaml").write_text(QUICK)
    (shipped / "broken.yaml").write_text("name: broken\nduration: soon\n")
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'dd.db'}", secret_key="scenario-api-test-secret-key-0123456789abcdef"
    )
    runtime = Runtime(settings)
    migrate(runtime.engine)
    for name, role in (("tess", "tester"), ("olga", "operator")):  # tokens count only for existing accounts
        runtime.store.upsert_user(name, "!no-password-login", role)
    app = create_app(settings, runtime)
    if not any(getattr(r, "path", "") == "/api/v1/scenarios" for r in app.routes):
        app.include_router(scenarios.router, prefix="/api/v1")
    app.dependency_overrides[scenarios.get_scenario_runs] = lambda: ScenarioRuns(tmp_path / "runs", shipped)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        c.headers["Authorization"] = f"Bearer {issue_token(settings.secret_key, 'tess', 'tester', 60)}"
        c.operator_headers = {  # type: ignore[attr-defined]
            "Authorization": f"Bearer {issue_token(settings.secret_key, 'olga', 'operator', 60)}"
        }
        yield c


async def test_only_testers_and_admins_may_run_scenarios(client: httpx.AsyncClient) -> None:
    headers = client.operator_headers  # type: ignore[attr-defined]
    assert (await client.get("/api/v1/scenarios", headers=headers)).status_code == 403
    assert (await client.post("/api/v1/scenarios", json={"name": "quick"}, headers=headers)).status_code == 403
    assert (await client.get("/api/v1/scenarios", headers={"Authorization": ""})).status_code == 401


async def test_list_start_and_read_the_report(client: httpx.AsyncClient) -> None:
    listing = (await client.get("/api/v1/scenarios")).json()
    by_name = {s["name"]: s for s in listing["scenarios"]}
    assert by_name["quick"]["valid"] and by_name["quick"]["incidents"] == 1
    assert not by_name["broken"]["valid"] and "broken.yaml:2: duration" in by_name["broken"]["error"]
    assert listing["runs"] == []

    r = await client.post("/api/v1/scenarios", json={"name": "nope"})
    assert r.status_code == 404 and "quick" in r.json()["detail"]
    r = await client.post("/api/v1/scenarios", json={"name": "../../etc/passwd"})
    assert r.status_code == 404

    r = await client.post("/api/v1/scenarios", json={"name": "quick"})
    assert r.status_code == 202, r.text
    run = r.json()
    assert run["state"] == "running" and run["report_url"] is None
    again = await client.post("/api/v1/scenarios", json={"name": "quick"})
    assert again.status_code == 409, "one run at a time"

    deadline = time.monotonic() + 240  # generous: a whole service and simulator start in the child
    while (state := (await client.get(f"/api/v1/scenarios/runs/{run['id']}")).json())["state"] == "running":
        assert time.monotonic() < deadline, "the run never finished"
        await asyncio.sleep(0.5)  # a child process offers no event to await over HTTP
    out = (await client.get(f"/api/v1/scenarios/runs/{run['id']}/output.txt")).text
    assert state["state"] == "passed", out
    assert state["exit_code"] == 0 and state["tests"] == 2 and state["failures"] == 0
    page = await client.get(state["report_url"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Scenario quick" in page.text and "PASSED" in page.text
    junit = await client.get(state["junit_url"])
    assert junit.status_code == 200 and b"<testsuite" in junit.content
    assert [r["id"] for r in (await client.get("/api/v1/scenarios")).json()["runs"]] == [run["id"]]
    assert (await client.get(f"/api/v1/scenarios/runs/{run['id']}/secrets.txt")).status_code == 404
    assert (await client.get("/api/v1/scenarios/runs/20260101T000000-deadbeef")).status_code == 404
    assert (await client.get("/api/v1/scenarios/runs/not-a-run")).status_code == 422
