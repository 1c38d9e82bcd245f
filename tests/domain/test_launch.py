"""Launch fast: departure height, the climb-while-flying profile of compiled missions, the physical floor."""

from __future__ import annotations

import math

import pytest

from dronedispatch.domain import launch
from dronedispatch.domain.airspace import Airspace
from dronedispatch.domain.geo import destination, distance_m
from dronedispatch.domain.mission_items import Cmd, Frame
from dronedispatch.domain.qgc_plan import from_plan, to_plan
from dronedispatch.domain.templates import compile_mission, load_templates

from .conftest import GTOWER

DOCK = (*GTOWER, 5.0)


def test_departure_height_is_the_obstacle_height_within_transit_altitude_and_ceiling() -> None:
    assert launch.departure_alt(80.0) == launch.DEFAULT_DEPARTURE_ALT_M == 25.0
    assert launch.departure_alt(80.0, 40.0) == 40.0
    assert launch.departure_alt(30.0, 40.0) == 30.0  # obstacles above the transit altitude: climb straight up
    assert launch.departure_alt(80.0, 40.0, ceiling_m=35.0) == 35.0


def test_floor_formula_door_takeoff_and_the_longer_of_transit_and_the_rest_of_the_climb() -> None:
    f = launch.response_floor(
        door_s=6.0,
        distance_m=3000.0,
        departure_alt_m=25.0,
        transit_alt_m=60.0,
        climb_rate_m_s=3.0,
        cruise_speed_m_s=15.0,
    )
    assert math.isclose(f.total_s, 6.0 + 25.0 / 3.0 + 3000.0 / 15.0)  # the 35 m climb hides in the 200 s transit
    assert (f.door_s, f.departure_alt_m, f.transit_alt_m) == (6.0, 25.0, 60.0)
    near = launch.response_floor(
        door_s=6.0, distance_m=60.0, departure_alt_m=25.0, transit_alt_m=80.0, climb_rate_m_s=3.0, cruise_speed_m_s=15.0
    )
    assert math.isclose(near.transit_s, 55.0 / 3.0)  # a hop next door: the climb is the longer part
    assert "door 6 s" in near.describe() and f"= {near.total_s:.0f} s" in near.describe()
    # climbing fully first (departure = transit) is the classic sum, never less than climbing while flying
    classic = launch.response_floor(
        door_s=6.0,
        distance_m=3000.0,
        departure_alt_m=60.0,
        transit_alt_m=60.0,
        climb_rate_m_s=3.0,
        cruise_speed_m_s=15.0,
    )
    assert math.isclose(classic.total_s, 6.0 + 20.0 + 200.0) and classic.total_s > f.total_s
    # already in the air at 70 m: no take-off, nothing to climb
    air = launch.response_floor(
        door_s=0.0,
        distance_m=1500.0,
        departure_alt_m=25.0,
        transit_alt_m=60.0,
        climb_rate_m_s=3.0,
        cruise_speed_m_s=15.0,
        start_alt_m=70.0,
    )
    assert math.isclose(air.total_s, 100.0) and air.takeoff_s == 0.0


def test_climb_profile_never_steeper_than_climb_rate_over_cruise() -> None:
    pts = [
        GTOWER,
        destination(*GTOWER, 90.0, 150.0),
        destination(*GTOWER, 90.0, 400.0),
        destination(*GTOWER, 90.0, 2000.0),
    ]
    alts = launch.climb_profile(
        pts, departure_alt_m=25.0, transit_alt_m=60.0, climb_rate_m_s=3.0, cruise_speed_m_s=15.0
    )
    assert alts[0] == 25.0 and alts[-1] == 60.0
    assert math.isclose(alts[1], 25.0 + 150.0 * 3.0 / 15.0, abs_tol=0.5)  # 55 m after 150 m
    assert alts[2] == 60.0  # reached the transit altitude 175 m out
    # the last point is the arrival: always at the transit altitude, even when it is nearer than that
    assert (
        launch.climb_profile(
            pts[:2], departure_alt_m=25.0, transit_alt_m=80.0, climb_rate_m_s=3.0, cruise_speed_m_s=15.0
        )[-1]
        == 80.0
    )


@pytest.fixture(scope="module")
def templates():  # type: ignore[no-untyped-def]
    return load_templates()


def test_compiled_mission_takes_off_to_the_departure_height_then_climbs_while_flying(templates) -> None:
    far = destination(*GTOWER, 45.0, 3000.0)
    bend = destination(*GTOWER, 45.0, 120.0)
    c = compile_mission(
        templates["hover_roi"],
        {"altitude_m": 60},
        dock=DOCK,
        target=far,
        route=[GTOWER, bend, far],
        cruise_speed=15.0,
        climb_rate_m_s=3.0,
    )
    takeoff, wp, arrival = c.items[0], c.items[1], c.items[c.on_scene_seq - 1]
    assert takeoff.command == Cmd.NAV_TAKEOFF and takeoff.alt == 25.0
    assert wp.command == Cmd.NAV_WAYPOINT and math.isclose(wp.alt, 25.0 + 120.0 * 3.0 / 15.0, abs_tol=0.5)
    assert arrival.command == Cmd.NAV_WAYPOINT and arrival.alt == 60.0
    assert all(
        it.frame == Frame.GLOBAL_RELATIVE_ALT_INT
        for it in c.items
        if it.is_positional and it.command != Cmd.DO_SET_ROI_LOCATION
    )
    assert c.max_alt_m == 60.0
    # the city's obstacle height (airspace property) sets the departure; an airborne drone climbs at once
    city = Airspace.from_geojson(
        {"type": "FeatureCollection", "properties": {"ceiling_m": 120, "obstacle_height_m": 40}, "features": []}
    )
    assert city.as_geojson()["properties"]["obstacle_height_m"] == 40
    c2 = compile_mission(templates["hover_roi"], {"altitude_m": 60}, dock=DOCK, target=far, airspace=city)
    assert c2.items[0].alt == 40.0
    c3 = compile_mission(templates["hover_roi"], {"altitude_m": 60}, dock=DOCK, target=far, airborne=True)
    assert c3.items[0].alt == 60.0
    # the QGroundControl plan keeps the heights item by item, and reads back the same sequence
    plan = to_plan(c.items, home=DOCK)
    back = from_plan(plan)
    assert [(it.command, round(it.alt, 3)) for it in back.items] == [(it.command, round(it.alt, 3)) for it in c.items]
    assert distance_m(*GTOWER, *far) > 2900


def test_planner_eta_uses_each_docks_obstacle_height() -> None:
    from dronedispatch.domain.fleet import Dock, DroneState
    from dronedispatch.domain.planning import DroneStatus, recommend

    assert Dock(id="d", name_ko="d", name_en="d", lat=0, lon=0, obstacle_height_m=40).obstacle_height_m == 40
    scene = destination(*GTOWER, 90.0, 3000.0)

    def status(drone_id: str, obstacle: float | None) -> DroneStatus:
        return DroneStatus(drone_id, 1, DroneState.READY, *GTOWER, 0.0, 90.0, cruise_speed=15.0, launch_delay_s=6.0,
                           obstacle_height_m=obstacle)  # fmt: skip

    low, high = recommend(*scene, "fire", [status("low", None), status("tall", 55.0)], time_on_scene_s=60,
                          cruise_alt_m=60.0)  # fmt: skip
    route = distance_m(*GTOWER, *scene)
    assert (low.drone_id, high.drone_id) == ("low", "tall")
    assert math.isclose(low.eta_s or 0, 6.0 + 25.0 / 3.0 + route / 15.0, rel_tol=1e-6)
    assert math.isclose(high.eta_s or 0, 6.0 + 55.0 / 3.0 + route / 15.0, rel_tol=1e-6)
