"""The response_within_floor expectation: dispatch click to on scene against the airframe's physical floor."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dronedispatch.domain.geo import destination
from dronedispatch.domain.mission_items import roi_location, takeoff, waypoint
from dronedispatch.scenario.expectations import FAIL, PASS, Context, StoreFacts, evaluate, mission_floor
from dronedispatch.scenario.loader import load_scenario
from dronedispatch.scenario.recording import Arrival, MissionTrace, Recording

SCENARIO = """\
name: unit
duration: 10m
fleet:
  docks: [{id: home, name_ko: 집, name_en: Home, lat: 37.3918, lon: 126.6393}]
  drones: [{id: dd-01, sysid: 1, dock: home, cruise_speed: 15, climb_speed: 3, launch_delay_s: 6}]
incidents:
  - {id: a, at: 10s, location: {lat: 37.40, lon: 126.65}}
expect:
  - {check: response_within_floor, max_ratio: 1.15}
"""
DOCK = (37.3918, 126.6393)
BEND = destination(*DOCK, 45.0, 500.0)
ARRIVAL = destination(*BEND, 90.0, 1000.0)


def _ctx(tmp_path: Path, on_scene_after_click: float, *, click: float = 20.0) -> Context:
    path = tmp_path / "unit.yaml"
    path.write_text(SCENARIO)
    loaded = load_scenario(path)
    items = [takeoff(*DOCK, 25.0), waypoint(*BEND, 60.0), waypoint(*ARRIVAL, 60.0), roi_location(37.40, 126.65)]
    rec = Recording()
    rec.arrivals["a"] = Arrival("a", "operator", 10.0, incident_id=1)
    rec.dispatched_at[1] = click
    rec.missions[1] = MissionTrace(
        1,
        1,
        "dd-01",
        states=[(click + 1, "uploading"), (click + 2, "launching"), (click + on_scene_after_click, "on_scene")],
    )
    facts = StoreFacts(
        missions=[
            {
                "id": 1,
                "incident_id": 1,
                "drone_id": "dd-01",
                "state": "on_scene",
                "reason": None,
                "items": [it.to_dict(i) for i, it in enumerate(items)],
                "on_scene_seq": 3,
            }
        ]
    )
    return Context(loaded.spec, rec, facts, None, loaded.fleet)  # type: ignore[arg-type]


def test_floor_of_a_stored_mission_is_door_takeoff_and_routed_distance(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, 100.0)
    floor = mission_floor(ctx.facts.missions[0], ctx.fleet)
    assert floor is not None
    # door 6 s (the fleet's launch delay) + 25 m at 3 m/s + 1500 m at 15 m/s (the 35 m climb overlaps)
    assert math.isclose(floor.total_s, 6.0 + 25.0 / 3.0 + 1500.0 / 15.0, rel_tol=1e-3)


@pytest.mark.parametrize(("after", "outcome"), [(120.0, PASS), (130.0, PASS), (133.0, FAIL), (200.0, FAIL)])
def test_response_against_the_floor(tmp_path: Path, after: float, outcome: str) -> None:
    floor = 6.0 + 25.0 / 3.0 + 100.0  # 114.3 s, so at most 131.5 s from the click
    (v,) = evaluate(_ctx(tmp_path, after))
    assert v.name == "response_within_floor"
    ratio = after / floor
    assert v.outcome == outcome
    assert f"dispatch to on scene {after:.0f} s" in v.detail and f"ratio {ratio:.2f}" in v.detail
    assert "door 6 s + take-off to 25 m 8 s" in v.detail
    if v.outcome == FAIL:
        assert "> 1.15" in v.detail


def test_no_mission_on_scene_fails_with_the_reason(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, 100.0)
    ctx.rec.dispatched_at.clear()
    (v,) = evaluate(ctx)
    assert v.outcome == FAIL and "no dispatched mission reached the scene" in v.detail


def test_on_scene_is_when_the_vehicle_reached_the_arrival_point_when_the_run_recorded_it(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, 140.0)  # the service noticed at 160 s: over the limit
    assert evaluate(ctx)[0].outcome == FAIL
    # the vehicle's own clock says it reached the arrival (item 2) at 130 s; item 2 of an earlier flight does not count
    ctx.rec.reached["dd-01"] = [(5.0, 2), (27.0, 0), (90.0, 1), (130.0, 2)]
    (v,) = evaluate(ctx)
    assert v.outcome == PASS and "dispatch to on scene 110 s" in v.detail


def test_floor_uses_the_door_time_the_dock_reported_before_the_dispatch(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, 130.0)
    click = ctx.rec.dispatched_at[1]
    dock = ctx.fleet.drones[0].dock
    ctx.rec.on_dock(click - 5.0, {"dock_id": dock, "door_open_s": 12.0})
    ctx.rec.on_dock(click + 1.0, {"dock_id": dock, "door_open_s": 40.0})  # measured on this launch: too late
    (v,) = evaluate(ctx)
    assert "door 12 s" in v.detail
    # 130 s against 12 + 8.3 + 100 = 120.3 s: within 1.15 with the dock's own door time
    assert v.outcome == PASS and "ratio 1.08" in v.detail
