"""Continuous overwatch against the simulated fleet over MAVLink, in one process at a high speed factor.

Two incidents, one after the other, on one running service:

- coverage until closed: three drones from two docks take turns over the scene for as long as the
  incident stays open (hand-overs with overlap, no gap, no end of their own); closing it sends every
  drone of the incident home and launches no more;
- a gap nobody can close: the only relief is at a far dock. The operator is warned with the predicted
  gap as soon as the drone reaches the scene, long before it must leave; it then goes home with its
  reserve (the scene goes dark) while the far relief is still on its way.

Relief is planned on simulated time (as the scenario runner does), so the drones' endurance and the
overlap are the real figures; the wall clock only shrinks them by the speed factor.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from dronedispatch import cityfiles
from dronedispatch.api.security import issue_token
from dronedispatch.domain.fleet import FleetConfig
from dronedispatch.runtime import Runtime
from dronedispatch.scenario.broker import free_udp_block, free_udp_port
from dronedispatch.service import create_app
from dronedispatch.settings import Settings
from dronedispatch.sim.runner import SimFleet
from dronedispatch.store.repo import as_utc

T = TypeVar("T")
SPEED = 40.0
#: Between the two Songdo docks (about 1.2 and 1.7 km); Yeongjong is about 12 km away.
SCENE = {"lat": 37.3885, "lon": 126.6580}
ROTATION = ("ow-01", "ow-02", "ow-03")


def _fleet() -> FleetConfig:
    base = cityfiles.load_fleet()
    docks = [d for d in base.docks if d.id in ("gtower", "songdo-south", "yeongjong")]
    drone = {"cruise_speed": 15, "endurance_min": 20, "capabilities": ["camera", "thermal"]}
    drones = [
        {"id": "ow-01", "sysid": 1, "dock": "songdo-south", **drone},
        {"id": "ow-02", "sysid": 2, "dock": "gtower", **drone},
        {"id": "ow-03", "sysid": 3, "dock": "songdo-south", **drone},
        {"id": "ow-04", "sysid": 4, "dock": "gtower", **drone},
        {"id": "ow-far", "sysid": 5, "dock": "yeongjong", **drone, "endurance_min": 60},
    ]
    return FleetConfig.model_validate({**base.model_dump(), "docks": [d.model_dump() for d in docks],
                                       "drones": drones})  # fmt: skip


async def _until(predicate: Callable[[], Awaitable[T]], what: str, within_s: float) -> T:
    deadline = time.monotonic() + within_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last {last!r}")


async def test_coverage_until_closed_and_a_predicted_gap(tmp_path: Path) -> None:
    fleet = _fleet()
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump(fleet.model_dump(), allow_unicode=True), "utf-8")
    gcs_port = free_udp_port()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'dd.db'}", mavlink=f"udpin:127.0.0.1:{gcs_port}", fleet=fleet_file,
        secret_key="overwatch-live-secret-key-0123456789abcdef",
    )  # fmt: skip
    sim = SimFleet(fleet, speed_factor=SPEED, video=False, gcs_port=gcs_port,
                   vehicle_port_base=free_udp_block(len(fleet.drones)), api_port_base=None)  # fmt: skip
    runtime = Runtime(settings)
    app = create_app(settings, runtime)
    await runtime.start()
    await sim.start()
    runtime.overwatch.use_clock(lambda: time.monotonic() * SPEED, scale=SPEED, tick_s=0.1)
    runtime.store.upsert_user("op", "!no-password-login", "operator")
    auth = {"Authorization": f"Bearer {issue_token(settings.secret_key, 'op', 'operator', 600)}"}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=auth,
                                     timeout=30) as http:  # fmt: skip

            async def get(path: str) -> Any:
                r = await http.get(f"/api/v1{path}")
                assert r.status_code == 200, r.text
                return r.json()

            async def ready() -> bool:
                return all(d["state"] == "ready" for d in await get("/drones"))

            async def maintenance(drones: tuple[str, ...], on: bool) -> None:
                for d in drones:
                    await asyncio.to_thread(runtime.fleet.set_maintenance, d, on, "test")

            await _until(ready, "every drone to be heard and ready", 60)

            # 1. until closed: the three keep relieving one another while the incident is open
            await maintenance(("ow-04", "ow-far"), True)
            inc = await _open_incident(http, "until_closed", "ow-01")
            cov = await _until(lambda: _coverage_with(get, inc, handovers=2), "two hand-overs", 120)
            assert cov["mode"] == "until_closed" and cov["until"] is None and cov["active"] is True
            assert sorted(i["drone_id"] for i in cov["intervals"][:3]) == list(ROTATION)  # each drone once, in turn
            assert cov["gaps"] == [] and all(h["overlap_s"] > 0 for h in cov["handovers"]), cov["handovers"]
            assert [m["relieves_mission_id"] for m in cov["missions"][1:3]] == [m["id"] for m in cov["missions"][:2]]

            r = await http.post(f"/api/v1/incidents/{inc}/close", json={"outcome": "fire out"})
            assert r.status_code == 200, r.text

            async def all_home() -> Any:
                missions = await get(f"/missions?incident_id={inc}")
                return missions if all(m["state"] in ("returning", "completed") for m in missions) else None

            missions = await _until(all_home, "every drone of the closed incident sent home", 30)
            await asyncio.sleep(1.0)  # ten planning rounds: no relief follows the close
            assert len(await get(f"/missions?incident_id={inc}")) == len(missions)
            assert (await get(f"/incidents/{inc}"))["on_scene_drone_id"] is None
            ended = runtime.store.audit_log(target_type="incident", target_id=str(inc))
            assert [a.action for a in ended].count("incident.coverage_end") == 1

            # 2. the only relief is far away: a gap predicted, alerted long before the drone must leave
            async def landed() -> bool:
                return all(d["landed"] for d in await get("/drones"))

            await _until(landed, "the first incident's drones to land", 60)
            await maintenance(ROTATION, True)
            await maintenance(("ow-04", "ow-far"), False)
            inc = await _open_incident(http, "until_closed", "ow-04")
            [first] = await get(f"/missions?incident_id={inc}")

            async def alerted() -> Any:
                return next((a for a in runtime.store.audit_log(target_type="mission", target_id=str(first["id"]))
                             if a.action == "alert.raised" and a.detail["code"] == "coverage_gap"), None)  # fmt: skip

            alert = await _until(alerted, "the coverage gap alert", 60)
            message = alert.detail["message"]
            leave_in, gap = (float(x) for x in re.findall(r"(\d+) s", message))
            assert "the earliest relief, ow-far, arrives" in message and "predicted coverage gap" in message
            assert gap > 5.0, message  # 12 km against a 20-minute battery: minutes of simulated time uncovered
            # the far relief left at once (the gap as short as it can be)
            cov = await get(f"/incidents/{inc}/coverage")
            [relief] = [m for m in cov["missions"] if m["drone_id"] == "ow-far"]
            assert relief["relieves_mission_id"] == first["id"]

            async def left() -> Any:
                return (await get(f"/missions/{first['id']}")) if (await get(f"/incidents/{inc}/coverage"))[
                    "missions"][0]["left_scene_at"] else None  # fmt: skip

            await _until(left, "ow-04 to leave the scene for its reserve", 60)
            cov = await get(f"/incidents/{inc}/coverage")
            left_at = datetime.fromisoformat(cov["missions"][0]["left_scene_at"])
            on_scene_at = datetime.fromisoformat(cov["missions"][0]["on_scene_at"])
            warned = (left_at - as_utc(alert.at)).total_seconds()
            # warned on arrival, the whole stay (over 300 simulated seconds) before the gap; the stay ended about
            # when the alert said, rather later (the plan drains the battery at least at the nominal rate)
            assert (as_utc(alert.at) - on_scene_at).total_seconds() < 2.0
            assert warned > 8.0 and 0.8 * leave_in <= warned <= 1.5 * leave_in, (warned, alert.detail["message"])
            [relief] = [m for m in cov["missions"] if m["drone_id"] == "ow-far"]
            assert relief["state"] in ("launching", "enroute") and cov["on_scene_drone_id"] is None
            assert any(a.action == "mission.coverage_leave"
                       for a in runtime.store.audit_log(target_type="mission", target_id=str(first["id"])))  # fmt: skip
            r = await http.post(f"/api/v1/incidents/{inc}/close", json={})
            assert r.status_code == 200, r.text
    finally:
        await sim.stop()
        await runtime.stop()


async def _open_incident(http: httpx.AsyncClient, mode: str, drone: str) -> int:
    r = await http.post("/api/v1/incidents", json={"category": "fire", "severity": 4, "location": SCENE,
                                                   "coverage": {"mode": mode}})  # fmt: skip
    assert r.status_code == 201, r.text
    inc = int(r.json()["id"])
    body = {"drone_id": drone, "template": "hover_roi", "params": {"time_on_scene_s": 0}}  # hold: the service relieves
    r = await http.post(f"/api/v1/incidents/{inc}/dispatch", json=body)
    assert r.status_code == 201, r.text
    return inc


async def _coverage_with(get: Callable[[str], Awaitable[Any]], inc: int, *, handovers: int) -> Any:
    cov = await get(f"/incidents/{inc}/coverage")
    return cov if len(cov["handovers"]) >= handovers else None
