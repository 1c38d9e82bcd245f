import json
from pathlib import Path

import pytest

from dronedispatch.domain.airspace import Airspace
from dronedispatch.domain.fleet import DroneState
from dronedispatch.domain.planning import DroneStatus

ROOT = Path(__file__).resolve().parents[2]
GTOWER = (37.3918, 126.6393)
SONGDO_SOUTH = (37.3780, 126.6600)
CENTRAL_PARK = (37.3926, 126.6378)


@pytest.fixture(scope="session")
def ifez_airspace() -> Airspace:
    return Airspace.from_geojson(json.loads((ROOT / "sitl" / "airspace-ifez.geojson").read_text(encoding="utf-8")))


def drone(drone_id: str = "dd-01", at: tuple[float, float] = GTOWER, *, state: DroneState = DroneState.READY,
          battery: float | None = 90.0, speed: float = 15.0, delay: float = 10.0, caps: tuple[str, ...] = ("camera",),
          endurance: float = 35.0, consumption: float | None = None, sysid: int = 1, dock=None, alt: float = 0.0,
          ) -> DroneStatus:
    dock = dock or at
    return DroneStatus(drone_id=drone_id, sysid=sysid, state=state, lat=at[0], lon=at[1], alt=alt,
                       battery_pct=battery, cruise_speed=speed, launch_delay_s=delay, capabilities=caps,
                       endurance_min=endurance, dock_lat=dock[0], dock_lon=dock[1],
                       consumption_pct_per_min=consumption)
