from __future__ import annotations

import pytest
from pydantic import ValidationError

from dronedispatch import cityfiles
from dronedispatch.domain.fleet import Dock, DroneSpec, DroneState, FleetConfig, derive_drone_state

DOCKS = [Dock(id=f"d{i}", name_ko=f"도크{i}", name_en=f"Dock {i}", lat=37.0 + i / 100, lon=126.0) for i in range(3)]


def test_sized_keeps_listed_drones_and_spreads_the_rest_evenly_over_docks() -> None:
    fleet = FleetConfig(city="t", docks=DOCKS, drones=[DroneSpec(id="a", sysid=1, dock="d2", cruise_speed=20)])
    sized = fleet.sized(7)
    assert [d.sysid for d in sized.drones] == list(range(1, 8))
    assert sized.drones[0].id == "a" and sized.drones[0].dock == "d2"
    per_dock = {d.id: sum(1 for x in sized.drones if x.dock == d.id) for d in DOCKS}
    assert max(per_dock.values()) - min(per_dock.values()) <= 1, per_dock
    assert all(d.cruise_speed == 20 for d in sized.drones), "new drones copy the first listed one"
    assert len({d.id for d in sized.drones}) == 7


def test_sized_to_fewer_than_listed_takes_the_first() -> None:
    demo = cityfiles.load_fleet()
    assert [d.id for d in demo.sized(3).drones] == ["dd-01", "dd-02", "dd-03"]
    assert [d.dock for d in demo.sized(20).drones].count("gtower") == 5


@pytest.mark.parametrize(
    "drones",
    [
        [{"id": "a", "sysid": 1, "dock": "nowhere"}],
        [{"id": "a", "sysid": 1, "dock": "d0"}, {"id": "a", "sysid": 2, "dock": "d0"}],
        [{"id": "a", "sysid": 1, "dock": "d0"}, {"id": "b", "sysid": 1, "dock": "d0"}],
        [{"id": "a", "sysid": 0, "dock": "d0"}],
    ],
)
def test_bad_fleets_are_refused_with_a_reason(drones: list[dict]) -> None:
    with pytest.raises(ValidationError):
        FleetConfig.model_validate({"city": "t", "docks": [d.model_dump() for d in DOCKS], "drones": drones})


@pytest.mark.parametrize(
    ("kw", "state"),
    [
        ({"heard": False}, DroneState.OFFLINE),
        ({"link_lost": True}, DroneState.OFFLINE),
        ({"maintenance": True, "link_lost": True}, DroneState.MAINTENANCE),
        ({"mode": "AUTO.RTL", "landed": False, "armed": True}, DroneState.RETURNING),
        ({"mission_active": True}, DroneState.IN_MISSION),
        ({"armed": True}, DroneState.IN_MISSION),
        ({"battery_pct": 20.0}, DroneState.CHARGING),
        ({"system_ready": False}, DroneState.DOCKED),
        ({}, DroneState.READY),
    ],
)
def test_drone_state_from_what_the_vehicle_says(kw: dict, state: DroneState) -> None:
    base = {"heard": True, "link_lost": False, "maintenance": False, "mission_active": False, "armed": False,
            "landed": True, "mode": "AUTO.LOITER", "battery_pct": 90.0, "system_ready": True}  # fmt: skip
    assert derive_drone_state(**{**base, **kw}) == state
