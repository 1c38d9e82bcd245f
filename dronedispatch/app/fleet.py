"""The live fleet: drones from the fleet file joined with what their vehicles report.

Vehicles appear on the link by system id; a vehicle whose sysid is not in the fleet file is
still shown (as ``px4-<sysid>``, docked where it first reported home) so an operator never
loses sight of something that flies.

What the registry keeps besides the vehicles is a cache of the store, never a truth of its own:
a drone's maintenance flag (the ``drones`` table) and its current mission (the one active
mission the database allows per drone) are loaded from the store at start and changed only
together with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from dronedispatch.app.errors import UnknownObject
from dronedispatch.app.ports import FleetStore, VehicleHandle
from dronedispatch.bus import Publisher
from dronedispatch.domain.fleet import Dock, DroneSpec, DroneState, FleetConfig, derive_drone_state
from dronedispatch.events import DroneChanged
from dronedispatch.schemas import DronePublic, LinkStatus, Position

log = logging.getLogger(__name__)

#: A drone published by another node is believed this long; the holder publishes at least once a second.
REMOTE_FRESH_S = 5.0
MAV_LANDED_STATE_ON_GROUND = 1
MAV_STATE_STANDBY = 3
MAV_STATE_ACTIVE = 4


@dataclass
class DroneEntry:
    spec: DroneSpec
    dock: Dock
    vehicle: VehicleHandle | None = None
    maintenance: bool = False
    mission_id: int | None = None
    extra: dict[str, object] = field(default_factory=dict)
    #: Several nodes: the drone as the node that holds its link last published it, and when it arrived
    #: (monotonic). Shown while this node does not hear the vehicle itself.
    remote: DronePublic | None = None
    remote_at: float = 0.0


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

    def __iter__(self) -> Iterator[DroneEntry]:
        return iter(sorted(self._by_id.values(), key=lambda e: e.spec.sysid))

    def get(self, drone_id: str) -> DroneEntry | None:
        return self._by_id.get(drone_id)

    def by_sysid(self, sysid: int) -> DroneEntry | None:
        return self._by_sysid.get(sysid)

    def attach(self, vehicle: VehicleHandle) -> DroneEntry:
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

    def detach(self, sysid: int) -> DroneEntry | None:
        """This node no longer hears the vehicle (its link went to another node)."""
        entry = self._by_sysid.get(sysid)
        if entry is not None:
            entry.vehicle = None
        return entry

    def observe_remote(self, drone: DronePublic, now: float | None = None) -> DroneEntry | None:
        """Another node published ``drone``: kept for the drones this node does not hear itself."""
        entry = self._by_id.get(drone.id)
        if entry is None or entry.vehicle is not None:
            return None
        entry.remote, entry.remote_at = drone, time.monotonic() if now is None else now
        return entry

    def _remote(self, entry: DroneEntry, now: float | None = None) -> DronePublic | None:
        if entry.vehicle is not None or entry.remote is None:
            return None
        now = time.monotonic() if now is None else now
        return entry.remote if now - entry.remote_at < REMOTE_FRESH_S else None

    def state_of(self, entry: DroneEntry) -> DroneState:
        v = entry.vehicle
        remote = self._remote(entry)
        if remote is not None:
            if entry.maintenance:
                return DroneState.MAINTENANCE
            state = DroneState(remote.state)
            if entry.mission_id is not None and state in (DroneState.READY, DroneState.DOCKED, DroneState.CHARGING):
                return DroneState.IN_MISSION  # dispatched here a moment ago; the holder has not said so yet
            return state
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
        remote = self._remote(entry, now)
        if remote is not None:  # the holder's view, with what this node's store says of the drone
            return remote.model_copy(update={"state": self.state_of(entry).value, "mission_id": entry.mission_id})
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


class Fleet:
    """The live fleet as services change it: maintenance, current missions, publishing."""

    def __init__(self, registry: DroneRegistry, store: FleetStore, publisher: Publisher) -> None:
        self.registry = registry
        self._store = store
        self._publisher = publisher

    def load(self) -> None:
        """Read what the store knows of each drone (blocking: call it from a worker thread); with
        several nodes, again every few seconds, as another node may have changed it."""
        flags = self._store.maintenance_flags()
        active = self._store.active_missions()
        for entry in self.registry:
            entry.maintenance = flags.get(entry.spec.id, False)
            entry.mission_id = active.get(entry.spec.id)

    def entry(self, drone_id: str) -> DroneEntry:
        entry = self.registry.get(drone_id)
        if entry is None:
            raise UnknownObject(f"drone {drone_id!r} does not exist", "unknown_drone")
        return entry

    def set_maintenance(self, drone_id: str, maintenance: bool, actor: str) -> DronePublic:
        """Take a drone out of service or back (blocking: the store is written first)."""
        entry = self.entry(drone_id)
        self._store.set_maintenance(drone_id, maintenance)
        self._store.audit(actor, "drone.maintenance", "drone", drone_id, maintenance=maintenance)
        entry.maintenance = maintenance
        self.publish(entry)
        return self.registry.public(entry)

    def set_mission(self, drone_id: str, mission_id: int | None) -> None:
        """Follow the store: ``mission_id`` became (or, None, stopped being) the drone's active mission."""
        entry = self.registry.get(drone_id)
        if entry is None or entry.mission_id == mission_id:
            return
        entry.mission_id = mission_id
        self.publish(entry)

    def release_mission(self, drone_id: str, mission_id: int) -> None:
        entry = self.registry.get(drone_id)
        if entry is not None and entry.mission_id == mission_id:
            self.set_mission(drone_id, None)

    def publish(self, entry: DroneEntry) -> None:
        if entry.vehicle is None and entry.remote is not None:
            return  # another node hears this drone: only that node speaks for it
        self._publisher.publish(DroneChanged(data=self.registry.public(entry)))

    def public(self) -> list[DronePublic]:
        return [self.registry.public(e) for e in self.registry]
