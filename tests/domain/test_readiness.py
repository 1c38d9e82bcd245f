"""Ready means ready: dock health, launch threshold, weather limits; in-flight gust levels; the planner's use."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dronedispatch.domain.docks import DockState, DoorState, Weather
from dronedispatch.domain.fleet import DroneSpec, DroneState
from dronedispatch.domain.planning import ReasonCode, recommend
from dronedispatch.domain.readiness import (
    READY,
    GustLevel,
    Limits,
    assess,
    gust_check,
    ready_in_min,
    weather_breach,
    worst,
)

from .conftest import CENTRAL_PARK, GTOWER, SONGDO_SOUTH, drone

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LIMITS = Limits(max_wind=10, max_gust=12, gust_hard_limit=15, max_rain_mm_h=3, min_temp_c=-5, max_temp_c=35,
                launch_threshold_pct=40, charge_pct_per_min=2.0)  # fmt: skip


def weather(wind: float = 3, gust: float = 5, rain: float = 0, temp: float = 15) -> Weather:
    return Weather(wind_mean_ms=wind, gust_ms=gust, rain_mm_h=rain, temperature_c=temp, at=NOW)


def dock(**kw: Any) -> DockState:
    base: dict[str, Any] = dict(
        dock_id="gtower",
        door=DoorState.CLOSED,
        drone_present=True,
        charging=False,
        charge_pct=90.0,
        weather=weather(),
        updated_at=NOW - timedelta(seconds=2),
    )
    base.update(kw)
    return DockState(**base)


def judge(**kw: Any) -> Any:
    args: dict[str, Any] = dict(
        drone_id="dd-03", state=DroneState.READY, battery_pct=90.0, limits=LIMITS, dock=dock(), now=NOW
    )
    args.update(kw)
    return assess(**args)


def test_healthy_dock_full_battery_calm_weather_is_ready() -> None:
    assert judge() == READY
    assert judge(dock=None) == READY  # no dock device heard: judged as before docks were devices


def test_unknown_dock_judges_battery_only_with_the_charge_rate_estimate() -> None:
    r = judge(dock=None, battery_pct=30.0, state=DroneState.CHARGING)
    assert not r.ready and r.reason.code is ReasonCode.CHARGING
    assert r.ready_in_min == pytest.approx(5.0)  # (40 - 30) % at 2 %/min
    assert r.reason.en == "charging (30% of 40%): dd-03 ready in 5 min"
    assert "dd-03 5분 후 출동 가능" in r.reason.ko


def test_dock_estimate_wins_over_the_charge_rate_and_rounds_up() -> None:
    d = dock(charging=True, charge_pct=31.0, minutes_to_threshold=5.2)
    r = judge(battery_pct=None, state=DroneState.CHARGING, dock=d)  # battery from the dock when the vehicle is silent
    assert r.ready_in_min == pytest.approx(5.2)
    assert r.reason.params["ready_in_min"] == 6 and r.reason.params["battery"] == 31.0
    assert r.reason.params["ready_in_s"] == 312
    assert "ready in 6 min" in r.reason.en
    assert ready_in_min(39.99, LIMITS, None) > 0 and judge(battery_pct=39.99, dock=None).reason.params[
        "ready_in_min"] == 1  # fmt: skip


def test_threshold_is_per_drone_and_can_make_a_charging_state_ready() -> None:
    low = replace(LIMITS, launch_threshold_pct=30.0)
    assert judge(state=DroneState.CHARGING, battery_pct=35.0, limits=low) == READY
    r = judge(state=DroneState.READY, battery_pct=45.0, limits=replace(LIMITS, launch_threshold_pct=60.0), dock=None)
    assert r.reason.code is ReasonCode.CHARGING and r.ready_in_min == pytest.approx(7.5)


def test_a_drone_away_from_its_faulty_dock_is_not_held_back_by_it_but_a_silent_dock_holds_it() -> None:
    away = dock(fault="door jammed", door=DoorState.FAULT, drone_present=False, charge_pct=None)
    assert judge(dock=away) == READY
    silent = dock(drone_present=False, charge_pct=None, updated_at=NOW - timedelta(minutes=5))
    assert judge(dock=silent).reason.code is ReasonCode.DOCK_FAULT


def test_low_battery_on_a_dock_that_does_not_charge_says_so() -> None:
    r = judge(battery_pct=20.0, dock=dock(charging=False))
    assert r.reason.code is ReasonCode.LOW_BATTERY and r.ready_in_min is None
    assert "not charging" in r.reason.en


def test_battery_unknown_everywhere() -> None:
    assert judge(battery_pct=None, dock=None).reason.code is ReasonCode.BATTERY_UNKNOWN
    assert judge(battery_pct=None, dock=dock(drone_present=False, charge_pct=None)).reason.code is (
        ReasonCode.BATTERY_UNKNOWN)  # fmt: skip


@pytest.mark.parametrize(
    ("d", "code", "why"),
    [
        (dock(fault="charger over temperature"), ReasonCode.DOCK_FAULT, "charger over temperature"),
        (dock(door=DoorState.FAULT, fault="door jammed"), ReasonCode.DOOR_FAULT, "door jammed"),
        (dock(updated_at=NOW - timedelta(seconds=40)), ReasonCode.DOCK_FAULT, "no state from the dock for 40 s"),
    ],
)
def test_unhealthy_dock_holds_the_drone_back_first(d: DockState, code: ReasonCode, why: str) -> None:
    r = judge(dock=d, battery_pct=10.0, scene_weather=weather(gust=30))  # the dock is named before battery, weather
    assert not r.ready and r.reason.code is code
    assert r.reason.params == {"dock": "gtower", "why": why}
    assert "gtower" in r.reason.en and "gtower" in r.reason.ko


@pytest.mark.parametrize(
    ("w", "limit", "value", "limit_value", "unit"),
    [
        (weather(wind=8, gust=13), "gust", 13, 12, "m/s"),
        (weather(wind=11, gust=11), "wind", 11, 10, "m/s"),
        (weather(rain=3.5), "rain", 3.5, 3, "mm/h"),
        (weather(temp=-8), "temperature", -8, -5, "°C"),
        (weather(temp=38), "temperature", 38, 35, "°C"),
    ],
)
def test_each_weather_limit_is_named(w: Weather, limit: str, value: float, limit_value: float, unit: str) -> None:
    r = judge(dock=dock(weather=w))
    assert not r.ready and r.reason.code is ReasonCode.WEATHER
    p = r.reason.params
    assert (p["where"], p["limit"], p["value"], p["limit_value"], p["unit"]) == ("dock", limit, value, limit_value,
                                                                                 unit)  # fmt: skip
    assert r.reason.en.startswith(f"weather at the dock: {limit} ")
    assert r.reason.ko.startswith("도크 기상")


def test_weather_at_the_limit_is_within_it_and_gust_is_named_before_wind() -> None:
    assert weather_breach(weather(wind=10, gust=12, rain=3, temp=35), LIMITS, "dock") is None
    assert weather_breach(weather(temp=-5), LIMITS, "dock") is None
    both = weather_breach(weather(wind=11, gust=16), LIMITS, "dock")
    assert both is not None and both.params["limit"] == "gust"
    assert both.en == "weather at the dock: gust 16 m/s beyond the airframe limit 12 m/s"


def test_scene_weather_is_checked_after_the_dock_and_without_a_dock() -> None:
    r = judge(scene_weather=weather(rain=6))
    assert r.reason.code is ReasonCode.WEATHER and r.reason.params["where"] == "scene"
    assert "현장 기상: 강우" in r.reason.ko
    assert judge(dock=None, scene_weather=weather(wind=12, gust=12)).reason.params["limit"] == "wind"
    # weather before charging: a drone that could not fly anyway is not "ready in 5 min"
    assert judge(dock=None, battery_pct=30.0, scene_weather=weather(gust=20)).reason.code is ReasonCode.WEATHER


def test_other_states_are_not_judged_ready() -> None:
    for state in (DroneState.IN_MISSION, DroneState.OFFLINE, DroneState.MAINTENANCE, DroneState.DOCKED):
        r = judge(state=state)
        assert not r.ready and r.reason.code is ReasonCode.NOT_READY and r.reason.params == {"state": state.value}


def test_limits_come_from_the_fleet_file_with_defaults() -> None:
    spec = DroneSpec(id="dd-09", sysid=9, dock="gtower")
    assert Limits.of(spec) == Limits()
    spec = DroneSpec(id="dd-09", sysid=9, dock="gtower", max_gust=9, gust_hard_limit=11, launch_threshold_pct=55)
    lim = Limits.of(spec)
    assert (lim.max_gust, lim.gust_hard_limit, lim.launch_threshold_pct) == (9, 11, 55)
    with pytest.raises(ValueError, match="gust_hard_limit"):
        DroneSpec(id="dd-09", sysid=9, dock="gtower", max_gust=12, gust_hard_limit=10)
    with pytest.raises(ValueError, match="min_temp_c"):
        DroneSpec(id="dd-09", sysid=9, dock="gtower", min_temp_c=5, max_temp_c=0)


def test_gust_levels_in_flight() -> None:
    assert gust_check(weather(gust=12), LIMITS, "dock").level is GustLevel.OK
    warn = gust_check(weather(gust=13), LIMITS, "scene")
    assert warn.level is GustLevel.WARN and warn.limit_ms == 12
    hard = gust_check(weather(wind=9, gust=17), LIMITS, "dock")
    assert hard.level is GustLevel.HARD
    assert hard.text == "weather: gust 17 m/s at the dock above the hard limit 15 m/s"
    assert worst([warn, hard, gust_check(weather(), LIMITS, "x")]) is hard
    assert worst([]) is None


def test_planner_proposes_a_farther_drone_that_can_launch_now_and_says_why() -> None:
    charging = judge(drone_id="near", state=DroneState.CHARGING, battery_pct=30.0, dock=None)
    near = drone("near", GTOWER, sysid=1, state=DroneState.CHARGING, battery=30.0)
    near = replace(near, launch_block=charging.reason)
    far = drone("far", SONGDO_SOUTH, sysid=2)
    cands = recommend(*CENTRAL_PARK, "fire", [near, far], time_on_scene_s=300)
    best, held = cands
    assert best.drone_id == "far" and best.rank == 1 and best.reason.code is ReasonCode.CHOSEN_OVER_NEARER
    assert "nearer near cannot launch: charging (30% of 40%): near ready in 5 min" in best.reason.en
    assert "더 가까운 near 출동 불가: 충전 중" in best.reason.ko
    assert held.drone_id == "near" and not held.eligible and held.reason.code is ReasonCode.CHARGING
    assert held.as_dict()["reason"]["params"]["ready_in_min"] == 5


def test_a_launch_block_refuses_even_a_ready_state_and_a_farther_blocked_drone_is_not_mentioned() -> None:
    gust = weather_breach(weather(gust=20), LIMITS, "dock")
    near = drone("near", GTOWER, sysid=1)
    far = replace(drone("far", SONGDO_SOUTH, sysid=2), launch_block=gust)
    best, held = recommend(*CENTRAL_PARK, "fire", [near, far], time_on_scene_s=300)
    assert best.drone_id == "near" and best.reason.code is ReasonCode.CHOSEN
    assert held.reason.code is ReasonCode.WEATHER and held.reason.params["limit"] == "gust"
