"""Which drone should answer an incident: ETA ranking with an energy check, and the reasons why.

Pure: :func:`recommend` is a function of the incident, drone snapshots and (optionally) the
airspace; nothing is read from a clock, a socket or a database.

ETA = launch delay + the airframe's physical floor for the flight (:func:`dronedispatch.domain.launch.response_floor`):
a vertical take-off to the departure height at the climb rate, then the route at cruise speed while
the rest of the climb overlaps it (whichever is longer counts), as the compiled mission flies it.
The route goes round prohibited zones when an airspace is given.

Energy model (deliberately simple, documented so an operator can check it): a multicopter draws
about the same power in slow cruise as in hover, so the battery falls at a constant rate —
the drone's measured consumption (% per minute) when the fleet has one, otherwise
100 % / hover endurance. A mission needs climb + out + time on scene + back + descent at that
rate, plus a reserve (default 20 %, the usual landing reserve). A drone whose charge does not
cover that is not a candidate, and the reason says by how much it falls short.

Reasons carry a stable ``code`` and its parameters, plus ready-made English and Korean text;
the UI may show either text or translate the code itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from dronedispatch.domain import launch
from dronedispatch.domain.airspace import NoRoute
from dronedispatch.domain.fleet import DroneState
from dronedispatch.domain.geo import LatLon, distance_m, path_length_m
from dronedispatch.domain.incidents import Category

DEFAULT_RESERVE_PCT = 20.0
DEFAULT_CRUISE_ALT_M = 60.0
DESCENT_SPEED_M_S = 1.5

#: Capabilities that make a drone better suited to a category (reported, not required).
PREFERRED_CAPABILITIES: dict[Category, tuple[str, ...]] = {
    Category.FIRE: ("thermal",),
    Category.MISSING_PERSON: ("thermal", "spotlight"),
    Category.CRIME: ("spotlight", "speaker"),
    Category.FLOOD: ("speaker",),
}


class RoutePlanner(Protocol):
    """What the planner needs from the airspace (see :class:`dronedispatch.domain.airspace.Airspace`)."""

    def route(self, start: LatLon, goal: LatLon) -> list[LatLon]: ...


__all__ = [
    "Candidate",
    "DroneStatus",
    "EnergyEstimate",
    "NoRoute",
    "Reason",
    "ReasonCode",
    "RoutePlanner",
    "energy_needed",
    "eta_s",
    "recommend",
]


@dataclass(frozen=True, slots=True)
class DroneStatus:
    """A snapshot of one drone as the planner needs it."""

    drone_id: str
    sysid: int
    state: DroneState
    lat: float
    lon: float
    alt: float  # metres above home
    battery_pct: float | None
    cruise_speed: float  # m/s
    launch_delay_s: float
    capabilities: tuple[str, ...] = ("camera",)
    endurance_min: float = 35.0
    dock_lat: float | None = None
    dock_lon: float | None = None
    consumption_pct_per_min: float | None = None  # measured; None → 100 / endurance_min
    climb_speed: float = 3.0
    max_wind: float = 12.0
    #: How high obstacles round its dock reach (the vertical take-off's height); None: the city's default
    obstacle_height_m: float | None = None
    #: Why it cannot launch now although its state says ready (dock, battery threshold, weather:
    #: :mod:`dronedispatch.domain.readiness`); None when nothing holds it back.
    launch_block: Reason | None = None

    @property
    def dock(self) -> LatLon:
        if self.dock_lat is None or self.dock_lon is None:
            return (self.lat, self.lon)
        return (self.dock_lat, self.dock_lon)

    @property
    def drain_pct_per_s(self) -> float:
        per_min = self.consumption_pct_per_min or 100.0 / self.endurance_min
        return per_min / 60.0


class ReasonCode(StrEnum):
    CHOSEN = "chosen"
    CANDIDATE = "candidate"
    NOT_READY = "not_ready"
    BATTERY_UNKNOWN = "battery_unknown"
    INSUFFICIENT_ENERGY = "insufficient_energy"
    NO_ROUTE = "no_route"
    WIND = "wind"
    MISSING_CAPABILITY = "missing_capability"
    CHOSEN_OVER_NEARER = "chosen_over_nearer"
    DOCK_FAULT = "dock_fault"
    DOOR_FAULT = "door_fault"
    CHARGING = "charging"
    LOW_BATTERY = "low_battery"
    WEATHER = "weather"


_TEXT: dict[ReasonCode, tuple[str, str]] = {
    ReasonCode.CHOSEN: (
        "fastest: on scene in {eta_min:.1f} min over {km:.1f} km; battery {battery:.0f}% covers {need:.0f}%",
        "최단 도착: {km:.1f} km, {eta_min:.1f}분 후 현장 도착; 배터리 {battery:.0f}%로 필요량 {need:.0f}% 충족",
    ),
    ReasonCode.CANDIDATE: (
        "on scene in {eta_min:.1f} min ({slower_s:.0f} s slower than the best); "
        "battery {battery:.0f}% covers {need:.0f}%",
        "{eta_min:.1f}분 후 현장 도착 (최선보다 {slower_s:.0f}초 느림); "
        "배터리 {battery:.0f}%로 필요량 {need:.0f}% 충족",
    ),
    ReasonCode.NOT_READY: ("not available: drone is {state}", "출동 불가: 드론 상태 {state}"),
    ReasonCode.BATTERY_UNKNOWN: ("not available: battery level unknown", "출동 불가: 배터리 잔량 알 수 없음"),
    ReasonCode.INSUFFICIENT_ENERGY: (
        "not enough battery: needs {need:.0f}% (incl. {reserve:.0f}% reserve) for {km:.1f} km and "
        "{scene_min:.0f} min on scene, has {battery:.0f}%",
        "배터리 부족: {km:.1f} km 비행과 현장 {scene_min:.0f}분에 예비 {reserve:.0f}% 포함 {need:.0f}% 필요, "
        "현재 {battery:.0f}%",
    ),
    ReasonCode.NO_ROUTE: ("no route: {why}", "경로 없음: {why}"),
    ReasonCode.WIND: (
        "wind {wind:.0f} m/s exceeds the airframe limit {max_wind:.0f} m/s",
        "풍속 {wind:.0f} m/s가 기체 한계 {max_wind:.0f} m/s 초과",
    ),
    ReasonCode.MISSING_CAPABILITY: ("lacks required equipment: {missing}", "필수 장비 없음: {missing}"),
    ReasonCode.CHOSEN_OVER_NEARER: (
        "fastest that can launch now: on scene in {eta_min:.1f} min over {km:.1f} km; battery {battery:.0f}% "
        "covers {need:.0f}%; nearer {nearer} cannot launch: {why}",
        "지금 출동 가능한 최단 도착: {km:.1f} km, {eta_min:.1f}분 후 현장 도착; 배터리 {battery:.0f}%로 필요량 "
        "{need:.0f}% 충족; 더 가까운 {nearer} 출동 불가: {why_ko}",
    ),
    ReasonCode.DOCK_FAULT: ("dock {dock} out of order: {why}", "도크 {dock} 고장: {why}"),
    ReasonCode.DOOR_FAULT: ("dock {dock} door fault: {why}", "도크 {dock} 문 고장: {why}"),
    ReasonCode.CHARGING: (
        "charging ({battery:.0f}% of {threshold:.0f}%): {drone} ready in {ready_in_min} min",
        "충전 중 ({battery:.0f}%/{threshold:.0f}%): {drone} {ready_in_min}분 후 출동 가능",
    ),
    ReasonCode.LOW_BATTERY: (
        "battery {battery:.0f}% below the launch threshold {threshold:.0f}% and not charging",
        "배터리 {battery:.0f}%로 출동 기준 {threshold:.0f}% 미만, 충전 안 됨",
    ),
    ReasonCode.WEATHER: (
        "weather at the {where}: {limit} {value:.3g} {unit} beyond the airframe limit {limit_value:.3g} {unit}",
        "{where_ko} 기상: {limit_ko} {value:.3g} {unit}, 기체 한계 {limit_value:.3g} {unit} 벗어남",
    ),
}


@dataclass(frozen=True, slots=True)
class Reason:
    code: ReasonCode
    params: dict[str, object] = field(default_factory=dict)

    @property
    def en(self) -> str:
        return _TEXT[self.code][0].format(**self.params)

    @property
    def ko(self) -> str:
        return _TEXT[self.code][1].format(**self.params)

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code.value, "params": dict(self.params), "en": self.en, "ko": self.ko}


@dataclass(frozen=True, slots=True)
class EnergyEstimate:
    flight_s: float  # climb + out + on scene + back + descent
    needed_pct: float  # including reserve
    reserve_pct: float
    available_pct: float

    @property
    def margin_pct(self) -> float:
        return self.available_pct - self.needed_pct

    @property
    def sufficient(self) -> bool:
        return self.margin_pct >= 0


@dataclass(frozen=True, slots=True)
class Candidate:
    """One drone considered for an incident: eligible ones carry an ETA and a rank (1 = best)."""

    drone_id: str
    sysid: int
    eligible: bool
    reason: Reason
    eta_s: float | None = None
    route: tuple[LatLon, ...] = ()
    route_length_m: float | None = None
    return_length_m: float | None = None
    energy: EnergyEstimate | None = None
    rank: int | None = None
    preferred_capabilities: tuple[str, ...] = ()  # which of the category's preferred ones it has

    def as_dict(self) -> dict[str, object]:
        return {
            "drone_id": self.drone_id,
            "sysid": self.sysid,
            "eligible": self.eligible,
            "rank": self.rank,
            "eta_s": self.eta_s,
            "route": [list(p) for p in self.route],
            "route_length_m": self.route_length_m,
            "energy_needed_pct": self.energy.needed_pct if self.energy else None,
            "energy_margin_pct": self.energy.margin_pct if self.energy else None,
            "preferred_capabilities": list(self.preferred_capabilities),
            "reason": self.reason.as_dict(),
        }


def energy_needed(
    drone: DroneStatus,
    *,
    out_m: float,
    back_m: float,
    time_on_scene_s: float,
    cruise_alt_m: float = DEFAULT_CRUISE_ALT_M,
    reserve_pct: float = DEFAULT_RESERVE_PCT,
) -> EnergyEstimate:
    """Battery needed for a sortie: climb + out + on scene + back + descent, plus the reserve."""
    climb_s = max(0.0, cruise_alt_m - drone.alt) / drone.climb_speed
    flight_s = climb_s + (out_m + back_m) / drone.cruise_speed + time_on_scene_s + cruise_alt_m / DESCENT_SPEED_M_S
    needed = flight_s * drone.drain_pct_per_s + reserve_pct
    return EnergyEstimate(flight_s, needed, reserve_pct, drone.battery_pct if drone.battery_pct is not None else 0.0)


def eta_s(
    drone: DroneStatus,
    route_length_m: float,
    *,
    cruise_alt_m: float = DEFAULT_CRUISE_ALT_M,
    departure_alt_m: float = launch.DEFAULT_DEPARTURE_ALT_M,
) -> float:
    """Seconds from dispatch to arrival over the target: launch delay (dock door) + take-off to the
    departure height + max(route / cruise, rest of the climb / climb rate)."""
    floor = launch.response_floor(
        door_s=drone.launch_delay_s, distance_m=route_length_m, departure_alt_m=departure_alt_m,
        transit_alt_m=cruise_alt_m, climb_rate_m_s=drone.climb_speed, cruise_speed_m_s=drone.cruise_speed,
        start_alt_m=max(0.0, drone.alt),
    )  # fmt: skip
    return floor.total_s


def _route(airspace: RoutePlanner | None, start: LatLon, goal: LatLon) -> list[LatLon]:
    if airspace is None:
        return [start, goal]
    return airspace.route(start, goal)


def recommend(
    incident_lat: float,
    incident_lon: float,
    category: Category | str,
    drones: Iterable[DroneStatus],
    airspace: RoutePlanner | None = None,
    *,
    time_on_scene_s: float,
    cruise_alt_m: float = DEFAULT_CRUISE_ALT_M,
    reserve_pct: float = DEFAULT_RESERVE_PCT,
    wind_m_s: float | None = None,
    required_capabilities: Sequence[str] = ("camera",),
    departure_alt_m: float | None = None,
) -> list[Candidate]:
    """Every drone, eligible ones first by ETA (rank 1 = recommended), each with its reason.

    Only ``ready`` drones are candidates. Routes come from ``airspace.route`` (which raises
    :class:`NoRoute`); the drone is assumed to return to its dock along the same kind of route.
    ``departure_alt_m`` defaults to each drone's dock obstacle height, else the airspace's (see :mod:`.launch`).
    """
    city_obstacle = getattr(airspace, "obstacle_height_m", None)
    ceiling = getattr(airspace, "ceiling_m", None)

    def departure(d: DroneStatus) -> float:
        if departure_alt_m is not None:
            return departure_alt_m
        obstacle = d.obstacle_height_m if d.obstacle_height_m is not None else city_obstacle
        return launch.departure_alt(cruise_alt_m, obstacle, ceiling)

    category = Category(category)
    drones = list(drones)
    target = (incident_lat, incident_lon)
    preferred = PREFERRED_CAPABILITIES.get(category, ())
    assessed = [
        _assess(d, target, airspace, preferred, time_on_scene_s=time_on_scene_s, cruise_alt_m=cruise_alt_m,
                reserve_pct=reserve_pct, wind_m_s=wind_m_s, required_capabilities=required_capabilities,
                departure_alt_m=departure(d))
        for d in drones
    ]
    eligible = [c for c in assessed if c.eligible]
    rejected = [c for c in assessed if not c.eligible]
    held_back = _nearer_held_back(drones, eligible, rejected, target)
    # ETA first; among equal ETAs the better-equipped, then the fuller battery, then the id
    eligible.sort(key=lambda c: (round(c.eta_s or 0.0, 1), -len(c.preferred_capabilities),
                                 -(c.energy.margin_pct if c.energy else 0.0), c.drone_id))
    ranked: list[Candidate] = []
    best = eligible[0].eta_s if eligible else 0.0
    for i, c in enumerate(eligible):
        assert c.eta_s is not None
        params = {**c.reason.params, "eta_min": c.eta_s / 60, "slower_s": c.eta_s - (best or 0.0)}
        code = ReasonCode.CHOSEN if i == 0 else ReasonCode.CANDIDATE
        if i == 0 and held_back is not None and held_back.reason.code is not ReasonCode.CHOSEN_OVER_NEARER:
            # say why a nearer drone was passed over: it cannot launch now (dock, charge, weather)
            code = ReasonCode.CHOSEN_OVER_NEARER
            params.update(nearer=held_back.drone_id, why=held_back.reason.en, why_ko=held_back.reason.ko)
        ranked.append(_replace(c, rank=i + 1, reason=Reason(code, params)))
    rejected.sort(key=lambda c: c.drone_id)
    return ranked + rejected


def _assess(
    d: DroneStatus,
    target: LatLon,
    airspace: RoutePlanner | None,
    preferred: Sequence[str],
    *,
    time_on_scene_s: float,
    cruise_alt_m: float,
    reserve_pct: float,
    wind_m_s: float | None,
    required_capabilities: Sequence[str],
    departure_alt_m: float = launch.DEFAULT_DEPARTURE_ALT_M,
) -> Candidate:
    """One drone against one incident: an eligible candidate (unranked) or a refusal with its reason."""

    def refuse(code: ReasonCode, params: dict[str, object] | None = None, **extra: Any) -> Candidate:
        return Candidate(d.drone_id, d.sysid, False, Reason(code, params or {}), **extra)

    if d.launch_block is not None:
        return refuse(d.launch_block.code, dict(d.launch_block.params))
    if d.state != DroneState.READY:
        return refuse(ReasonCode.NOT_READY, {"state": d.state.value})
    missing = [c for c in required_capabilities if c not in d.capabilities]
    if missing:
        return refuse(ReasonCode.MISSING_CAPABILITY, {"missing": ", ".join(missing)})
    if wind_m_s is not None and wind_m_s > d.max_wind:
        return refuse(ReasonCode.WIND, {"wind": wind_m_s, "max_wind": d.max_wind})
    if d.battery_pct is None:
        return refuse(ReasonCode.BATTERY_UNKNOWN)
    start = (d.lat, d.lon)
    try:
        out = _route(airspace, start, target)
        back = out[::-1] if _close(start, d.dock) else _route(airspace, target, d.dock)
    except NoRoute as exc:
        return refuse(ReasonCode.NO_ROUTE, {"why": exc.reason})
    out_m, back_m = path_length_m(out), path_length_m(back)
    energy = energy_needed(d, out_m=out_m, back_m=back_m, time_on_scene_s=time_on_scene_s,
                           cruise_alt_m=cruise_alt_m, reserve_pct=reserve_pct)
    common: dict[str, object] = {"km": out_m / 1000, "battery": d.battery_pct, "need": energy.needed_pct}
    geometry: dict[str, Any] = {"route": tuple(out), "route_length_m": out_m, "return_length_m": back_m,
                                "energy": energy}
    if not energy.sufficient:
        params = {**common, "reserve": reserve_pct, "scene_min": time_on_scene_s / 60}
        return refuse(ReasonCode.INSUFFICIENT_ENERGY, params, **geometry)
    return Candidate(d.drone_id, d.sysid, True, Reason(ReasonCode.CANDIDATE, common),
                     eta_s=eta_s(d, out_m, cruise_alt_m=cruise_alt_m, departure_alt_m=departure_alt_m),
                     preferred_capabilities=tuple(c for c in preferred if c in d.capabilities), **geometry)


def _nearer_held_back(
    drones: Sequence[DroneStatus], eligible: Sequence[Candidate], rejected: Sequence[Candidate], target: LatLon
) -> Candidate | None:
    """The rejected drone nearest the scene that is held back only by its launch readiness (dock,
    charge, weather) and is nearer than every eligible one, or None."""
    if not eligible:
        return None
    by_id = {d.drone_id: d for d in drones}

    def dist(drone_id: str) -> float:
        d = by_id[drone_id]
        return distance_m(d.lat, d.lon, target[0], target[1])

    nearest_ok = min(dist(c.drone_id) for c in eligible)
    held = [c for c in rejected if by_id[c.drone_id].launch_block is not None and dist(c.drone_id) < nearest_ok]
    return min(held, key=lambda c: (dist(c.drone_id), c.drone_id), default=None)


def _close(a: LatLon, b: LatLon, tol_m: float = 1.0) -> bool:
    return distance_m(a[0], a[1], b[0], b[1]) <= tol_m


def _replace(c: Candidate, **changes: object) -> Candidate:
    return replace(c, **changes)  # type: ignore[arg-type]


def straight_eta_s(drone: DroneStatus, lat: float, lon: float) -> float:
    """ETA ignoring airspace (a lower bound; used to prune before routing)."""
    return eta_s(drone, distance_m(drone.lat, drone.lon, lat, lon))
