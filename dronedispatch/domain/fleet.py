"""Docks and drones of a city's fleet, as declared in its fleet file (``sitl/fleet-*.yaml``).

A city is a set of files; this module only validates the fleet's shape. Loading from disk lives
in :mod:`dronedispatch.cityfiles`.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, model_validator


class DroneState(StrEnum):
    """Operational state of a drone as the dispatcher sees it."""

    DOCKED = "docked"
    CHARGING = "charging"
    READY = "ready"
    IN_MISSION = "in_mission"
    RETURNING = "returning"
    OFFLINE = "offline"
    MAINTENANCE = "maintenance"


class Dock(BaseModel):
    id: str = Field(description="Stable dock identifier, e.g. 'gtower'.")
    name_ko: str = Field(description="Korean display name.")
    name_en: str = Field(description="English display name.")
    lat: float = Field(ge=-90, le=90, description="Latitude, degrees WGS84.")
    lon: float = Field(ge=-180, le=180, description="Longitude, degrees WGS84.")
    alt: float = Field(default=0.0, description="Ground altitude AMSL at the dock, metres.")
    obstacle_height_m: float | None = Field(
        default=None, ge=0, le=150,
        description="How high obstacles round the dock reach, metres: a take-off climbs vertically this far, then "
        "climbs on while flying (default: the airspace's obstacle_height_m, else 25 m).",
    )  # fmt: skip


class DroneSpec(BaseModel):
    id: str = Field(description="Stable drone identifier shown to operators, e.g. 'dd-01'.")
    sysid: int = Field(ge=1, le=254, description="MAVLink system id of the vehicle.")
    dock: str = Field(description="Id of the dock the drone launches from and returns to.")
    model: str = Field(default="quad", description="Airframe model name.")
    cruise_speed: float = Field(default=12.0, gt=0, le=30, description="Cruise ground speed, m/s.")
    climb_speed: float = Field(default=3.0, gt=0, le=10, description="Vertical speed up, m/s.")
    launch_delay_s: float = Field(default=10.0, ge=0, description="Dock open + arm + takeoff delay, s.")
    endurance_min: float = Field(default=35.0, gt=0, description="Hover endurance on a full battery, min.")
    capabilities: list[str] = Field(default_factory=lambda: ["camera"], description="camera, thermal, ...")
    max_wind: float = Field(default=12.0, gt=0, description="Highest wind the airframe flies in, m/s.")
    # weather limits for a launch and for a flight; defaults suit a small quadcopter (every limit is a no-go at launch)
    max_gust: float = Field(default=15.0, gt=0, description="Highest gust for a launch (in flight: an alert), m/s.")
    gust_hard_limit: float = Field(default=18.0, gt=0, description="Gust that brings a flying drone home, m/s.")
    max_rain_mm_h: float = Field(default=4.0, ge=0, description="Heaviest rain the airframe launches in, mm/h.")
    min_temp_c: float = Field(default=-10.0, description="Coldest air the battery and airframe launch in, °C.")
    max_temp_c: float = Field(default=40.0, description="Hottest air the airframe launches in, °C.")
    launch_threshold_pct: float = Field(
        default=40.0, ge=0, le=100, description="Battery a docked drone needs before it counts as ready, %."
    )
    charge_pct_per_min: float = Field(
        default=100.0 / 45.0, gt=0, description="Dock charging rate, %/min (the estimate when the dock gives none)."
    )

    @model_validator(mode="after")
    def _check_limits(self) -> DroneSpec:
        if self.gust_hard_limit < self.max_gust:
            raise ValueError(f"drone {self.id!r}: gust_hard_limit is below max_gust")
        if self.min_temp_c >= self.max_temp_c:
            raise ValueError(f"drone {self.id!r}: min_temp_c is not below max_temp_c")
        return self


class FleetConfig(BaseModel):
    city: str = Field(description="City identifier, e.g. 'ifez'.")
    docks: list[Dock]
    drones: list[DroneSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_references(self) -> FleetConfig:
        dock_ids = {d.id for d in self.docks}
        if len(dock_ids) != len(self.docks):
            raise ValueError("dock ids must be unique")
        seen_ids: set[str] = set()
        seen_sysids: set[int] = set()
        for drone in self.drones:
            if drone.dock not in dock_ids:
                raise ValueError(f"drone {drone.id!r} names unknown dock {drone.dock!r}")
            if drone.id in seen_ids:
                raise ValueError(f"drone id {drone.id!r} appears twice")
            if drone.sysid in seen_sysids:
                raise ValueError(f"system id {drone.sysid} appears twice")
            seen_ids.add(drone.id)
            seen_sysids.add(drone.sysid)
        return self

    def dock(self, dock_id: str) -> Dock:
        for d in self.docks:
            if d.id == dock_id:
                return d
        raise KeyError(dock_id)

    def sized(self, n: int) -> FleetConfig:
        """The first ``n`` drones of this fleet; more are spread round-robin over the docks.

        Used by ``--vehicles N``: sysids stay 1..N so they match PX4 SITL instances 0..N-1.
        """
        drones = [d for d in self.drones if d.sysid <= n][:n]
        taken = {d.sysid for d in drones}
        template = self.drones[0] if self.drones else None
        for sysid in (s for s in range(1, n + 1) if s not in taken):
            dock = self.docks[(sysid - 1) % len(self.docks)]
            base = template.model_dump() if template else {}
            base.update(id=f"dd-{sysid:02d}", sysid=sysid, dock=dock.id)
            drones.append(DroneSpec(**base))
        drones.sort(key=lambda d: d.sysid)
        return FleetConfig(city=self.city, docks=self.docks, drones=drones)


#: Below this charge a landed drone counts as charging, not ready.
READY_BATTERY_PCT = 40.0


def derive_drone_state(
    *,
    heard: bool,
    link_lost: bool,
    maintenance: bool,
    mission_active: bool,
    armed: bool,
    landed: bool,
    mode: str | None,
    battery_pct: float | None,
    system_ready: bool = True,
) -> DroneState:
    """The dispatcher's view of a drone from what its vehicle reports.

    ``system_ready`` is the autopilot's own word that it could arm now (PX4: MAV_STATE_STANDBY
    once its pre-flight checks pass, a few seconds after boot); until then the drone is docked.
    """
    if maintenance:
        return DroneState.MAINTENANCE
    if not heard or link_lost:
        return DroneState.OFFLINE
    if mode in ("AUTO.RTL", "RTL") and not landed:
        return DroneState.RETURNING
    if mission_active or armed or not landed:
        return DroneState.IN_MISSION
    if battery_pct is not None and battery_pct < READY_BATTERY_PCT:
        return DroneState.CHARGING
    if not system_ready:
        return DroneState.DOCKED
    return DroneState.READY
