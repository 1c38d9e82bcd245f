"""The live fleet: drones from the fleet file joined with what their vehicles report.

Vehicles appear on the link by system id; a vehicle whose sysid is not in the fleet file is
still shown (as ``px4-<sysid>``, docked where it first reported home) so an operator never
loses sight of something that flies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dronedispatch.domain.fleet import Dock, DroneSpec, DroneState, FleetConfig, derive_drone_state
from dronedispatch.schemas import DronePublic, LinkStatus, Position

if TYPE_CHECKING:
    from dronedispatch.mavlink.vehicle import Vehicle

MAV_LANDED_STATE_ON_GROUND = 1
MAV_STATE_STANDBY = 3
MAV_STATE_ACTIVE = 4


@dataclass
class DroneEntry:
    spec: DroneSpec
    dock: Dock
    vehicle: Vehicle | None = None
    maintenance: bool = False
    mission_id: int | None = None
    extra: dict[str, object] = field(default_factory=dict)


class DroneRegistry:
    def __init__(self, fleet: FleetConfig) -> None:
        self.fleet = fleet
        self._by_id: dict[str, DroneEntry] = {}
        self._by_sysid: dict[int, DroneEntry] = {}
        for spec in fleet.drones:
            self._add(DroneEntry(spec=spec, dock=fleet.dock(spec.dock)))

    def _add(self, entry: DroneEntry) -> None:
        self._by_id[entry.spec.id] = entry
        self._by_sysid[entry.spec.sysid] = entry

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._by_id.values(), key=lambda e: e.spec.sysid))

    def get(self, drone_id: str) -> DroneEntry | None:
        return self._by_id.get(drone_id)

    def by_sysid(self, sysid: int) -> DroneEntry | None:
        return self._by_sysid.get(sysid)

    def attach(self, vehicle: Vehicle) -> DroneEntry:
        """Bind a discovered vehicle to its drone, creating an entry for unknown system ids."""
        entry = self._by_sysid.get(vehicle.sysid)
        if entry is None:
            s = vehicle.state
            lat = s.home_lat if s.home_lat is not None else s.lat
            lon = s.home_lon if s.home_lon is not None else s.lon
            dock = Dock(
                id=f"home-{vehicle.sysid}",
                name_ko=f"기체 {vehicle.sysid} 홈",
                name_en=f"Vehicle {vehicle.sysid} home",
                lat=lat or 0.0,
                lon=lon or 0.0,
            )
            spec = DroneSpec(id=f"px4-{vehicle.sysid}", sysid=vehicle.sysid, dock=dock.id)
            entry = DroneEntry(spec=spec, dock=dock)
            self._add(entry)
        entry.vehicle = vehicle
        return entry

    def state_of(self, entry: DroneEntry) -> DroneState:
        v = entry.vehicle
        if v is None:
            return derive_drone_state(
                heard=False,
                link_lost=True,
                maintenance=entry.maintenance,
                mission_active=entry.mission_id is not None,
                armed=False,
                landed=True,
                mode=None,
                battery_pct=None,
            )
        s = v.state
        return derive_drone_state(
            heard=True,
            link_lost=v.health.lost,
            maintenance=entry.maintenance,
            mission_active=entry.mission_id is not None,
            armed=s.armed,
            landed=s.landed_state in (0, MAV_LANDED_STATE_ON_GROUND),
            mode=s.mode,
            battery_pct=s.battery_pct,
            system_ready=s.system_status in (MAV_STATE_STANDBY, MAV_STATE_ACTIVE) and s.prearm_ok is not False,
        )

    def public(self, entry: DroneEntry, now: float | None = None) -> DronePublic:
        now = time.monotonic() if now is None else now
        v = entry.vehicle
        spec = entry.spec
        if v is None:
            return DronePublic(
                id=spec.id,
                sysid=spec.sysid,
                dock_id=entry.dock.id,
                state=self.state_of(entry).value,
                battery=None,
                position=None,
                link=LinkStatus(ok=False, last_heard_s=None, loss=0.0),
                mission_id=entry.mission_id,
                capabilities=spec.capabilities,
                cruise_speed=spec.cruise_speed,
            )
        s, h = v.state, v.health
        position = (
            Position(lat=s.lat, lon=s.lon, alt=s.alt_rel, vehicle_time_ms=s.time_boot_ms)
            if s.lat is not None and s.lon is not None
            else None
        )
        return DronePublic(
            id=spec.id,
            sysid=spec.sysid,
            dock_id=entry.dock.id,
            state=self.state_of(entry).value,
            battery=s.battery_pct,
            position=position,
            heading=s.heading_deg,
            groundspeed=s.groundspeed,
            mode=s.mode,
            armed=bool(s.armed),
            landed=s.landed_state in (0, MAV_LANDED_STATE_ON_GROUND),
            link=LinkStatus(
                ok=not h.lost,
                last_heard_s=round(now - h.last_heard, 3) if h.last_heard else None,
                loss=round(h.loss_ratio, 4),
            ),
            mission_id=entry.mission_id,
            mission_seq=s.mission_seq,
            mission_total=s.mission_total,
            capabilities=spec.capabilities,
            cruise_speed=spec.cruise_speed,
        )
