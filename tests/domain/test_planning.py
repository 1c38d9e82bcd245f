import math

import pytest

from dronedispatch.domain.airspace import Airspace
from dronedispatch.domain.fleet import DroneState
from dronedispatch.domain.geo import distance_m
from dronedispatch.domain.planning import ReasonCode, energy_needed, eta_s, recommend

from .conftest import CENTRAL_PARK, GTOWER, SONGDO_SOUTH, drone


def test_nearest_ready_drone_is_ranked_first_with_reasons_in_both_languages() -> None:
    drones = [drone("far", SONGDO_SOUTH, sysid=2), drone("near", GTOWER, sysid=1)]
    cands = recommend(*CENTRAL_PARK, "fire", drones, time_on_scene_s=600)
    assert [c.drone_id for c in cands] == ["near", "far"]
    best, second = cands
    assert best.rank == 1 and best.reason.code == ReasonCode.CHOSEN
    assert second.rank == 2 and second.reason.code == ReasonCode.CANDIDATE
    assert best.eta_s is not None and second.eta_s is not None and best.eta_s < second.eta_s
    assert "on scene in" in best.reason.en and "현장 도착" in best.reason.ko
    assert "slower than the best" in second.reason.en
    d = best.as_dict()
    assert d["reason"]["code"] == "chosen" and d["rank"] == 1


def test_eta_is_launch_delay_plus_takeoff_plus_route_with_the_climb_overlapped() -> None:
    d = drone(speed=10.0, delay=20.0)
    # take-off to the 25 m departure height, then 1 km at cruise while climbing the other 35 m
    assert math.isclose(eta_s(d, 1000.0, cruise_alt_m=60.0), 20.0 + 25.0 / 3.0 + 100.0)
    # a short hop is limited by the climb: 35 m at 3 m/s is longer than 50 m at 10 m/s
    assert math.isclose(eta_s(d, 50.0, cruise_alt_m=60.0), 20.0 + 25.0 / 3.0 + 35.0 / 3.0)
    # nothing to climb over (departure height at the transit altitude): the classic sum
    assert math.isclose(eta_s(d, 1000.0, cruise_alt_m=60.0, departure_alt_m=60.0), 20.0 + 60.0 / 3.0 + 100.0)
    cands = recommend(*CENTRAL_PARK, "fire", [d], time_on_scene_s=0, cruise_alt_m=60.0)
    dist = distance_m(*GTOWER, *CENTRAL_PARK)
    assert math.isclose(cands[0].eta_s or 0, 20.0 + 25.0 / 3.0 + max(dist / 10.0, 35.0 / 3.0), rel_tol=1e-9)


def test_energy_model_counts_out_scene_back_and_reserve() -> None:
    d = drone(endurance=30.0, speed=10.0)  # 100 % / 30 min = 3.33 %/min
    e = energy_needed(d, out_m=3000, back_m=3000, time_on_scene_s=600, cruise_alt_m=60, reserve_pct=20)
    flight = 60 / 3.0 + 600 + 600 + 60 / 1.5
    assert math.isclose(e.flight_s, flight)
    assert math.isclose(e.needed_pct, flight / 60 * 100 / 30 + 20)
    measured = drone(endurance=30.0, speed=10.0, consumption=5.0)
    e2 = energy_needed(measured, out_m=3000, back_m=3000, time_on_scene_s=600, cruise_alt_m=60, reserve_pct=20)
    assert math.isclose(e2.needed_pct, flight / 60 * 5.0 + 20), "measured consumption overrides endurance"


def test_low_battery_drone_is_refused_with_the_numbers() -> None:
    drones = [drone("low", GTOWER, battery=30.0), drone("ok", SONGDO_SOUTH, battery=95.0, sysid=2)]
    cands = recommend(*CENTRAL_PARK, "traffic_accident", drones, time_on_scene_s=900)
    chosen, refused = cands
    assert chosen.drone_id == "ok" and chosen.eligible
    assert refused.drone_id == "low" and not refused.eligible
    assert refused.reason.code == ReasonCode.INSUFFICIENT_ENERGY
    assert refused.energy is not None and refused.energy.needed_pct > 30.0
    assert "has 30%" in refused.reason.en and "현재 30%" in refused.reason.ko


def test_energy_boundary_exact() -> None:
    d = drone(battery=100.0)
    e = energy_needed(d, out_m=0, back_m=0, time_on_scene_s=0)
    just_enough = drone(battery=e.needed_pct)
    c = recommend(*GTOWER, "fire", [just_enough], time_on_scene_s=0)[0]
    assert c.eligible
    c = recommend(*GTOWER, "fire", [drone(battery=e.needed_pct - 0.01)], time_on_scene_s=0)[0]
    assert not c.eligible


@pytest.mark.parametrize("state", [s for s in DroneState if s != DroneState.READY])
def test_only_ready_drones_are_candidates(state: DroneState) -> None:
    c = recommend(*CENTRAL_PARK, "fire", [drone(state=state)], time_on_scene_s=60)[0]
    assert not c.eligible and c.reason.code == ReasonCode.NOT_READY and state.value in c.reason.en


def test_unknown_battery_wind_and_equipment_are_refusals() -> None:
    c = recommend(*CENTRAL_PARK, "fire", [drone(battery=None)], time_on_scene_s=60)[0]
    assert c.reason.code == ReasonCode.BATTERY_UNKNOWN
    c = recommend(*CENTRAL_PARK, "fire", [drone()], time_on_scene_s=60, wind_m_s=15.0)[0]
    assert c.reason.code == ReasonCode.WIND and "15 m/s" in c.reason.en
    c = recommend(*CENTRAL_PARK, "fire", [drone()], time_on_scene_s=60, required_capabilities=("thermal",))[0]
    assert c.reason.code == ReasonCode.MISSING_CAPABILITY and "thermal" in c.reason.en


def test_equal_eta_prefers_preferred_equipment() -> None:
    plain = drone("a-plain", caps=("camera",))
    thermal = drone("b-thermal", caps=("camera", "thermal"), sysid=2)
    cands = recommend(*CENTRAL_PARK, "fire", [plain, thermal], time_on_scene_s=60)
    assert cands[0].drone_id == "b-thermal" and cands[0].preferred_capabilities == ("thermal",)


def test_route_round_a_zone_lengthens_eta(ifez_airspace: Airspace) -> None:
    d = drone("south", SONGDO_SOUTH)
    straight = recommend(*CENTRAL_PARK, "fire", [d], time_on_scene_s=60)[0]
    routed = recommend(*CENTRAL_PARK, "fire", [d], ifez_airspace, time_on_scene_s=60)[0]
    assert routed.eligible and len(routed.route) > 2
    assert (routed.route_length_m or 0) > (straight.route_length_m or 0)
    assert (routed.eta_s or 0) > (straight.eta_s or 0)


def test_target_inside_prohibited_zone_refuses_every_drone(ifez_airspace: Airspace) -> None:
    convensia = (37.3886, 126.6435)
    cands = recommend(*convensia, "crime", [drone(), drone("b", SONGDO_SOUTH, sysid=2)], ifez_airspace,
                      time_on_scene_s=60)
    assert all(not c.eligible and c.reason.code == ReasonCode.NO_ROUTE for c in cands)
    assert "inside prohibited zone" in cands[0].reason.en and "경로 없음" in cands[0].reason.ko


def test_airborne_drone_returns_to_its_dock_not_its_position() -> None:
    d = drone("air", CENTRAL_PARK, dock=SONGDO_SOUTH)
    c = recommend(*GTOWER, "fire", [d], time_on_scene_s=60)[0]
    assert math.isclose(c.return_length_m or 0, distance_m(*GTOWER, *SONGDO_SOUTH), rel_tol=1e-9)
