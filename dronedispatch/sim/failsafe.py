"""Battery model and failsafes of :class:`~dronedispatch.sim.model.VehicleModel`, as a mixin.

Battery drain depends on the flight phase (idle, hover, climb, descent) and airspeed; low battery
returns, critical lands (BAT_LOW_THR / BAT_CRIT_THR); a geofence breach runs GF_ACTION; losing the
GCS heartbeat for COM_DL_LOSS_T runs NAV_DLL_ACT, as PX4's commander does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from dronedispatch.sim.geodesy import offset_ne
from dronedispatch.sim.mission_server import (
    FENCE_CIRCLE_EXCLUSION,
    FENCE_CIRCLE_INCLUSION,
    FENCE_POLYGON_EXCLUSION,
    FENCE_POLYGON_INCLUSION,
    MissionStore,
)
from dronedispatch.sim.params import Params

# Battery drain relative to hover, per flight phase.
DRAIN_IDLE, DRAIN_HOVER, DRAIN_CLIMB, DRAIN_DESCENT = 0.03, 1.0, 1.45, 0.85
CELLS = 4



class FailsafeVehicle(Protocol):
    """What the battery model and the failsafes read and set on :class:`~.model.VehicleModel`.

    Stated here rather than importing the model, which calls this module: no import cycle.
    """

    # set here
    mode: str
    battery: float
    current_a: float
    _hold: tuple[float, float, float] | None
    _bat_level: int
    _fence_breached: bool
    _dll: bool
    # read here
    params: Params
    store: MissionStore
    home: tuple[float, float, float]
    lat: float
    lon: float
    alt_rel: float
    vd: float
    airspeed: float
    t: float
    endurance_s: float
    dll_floor_s: float
    _gcs_seen: float | None

    @property
    def landed(self) -> bool: ...

    def say(self, severity: int, text: str) -> None: ...

    def _on_mode_enter(self, name: str) -> None: ...


def drain_factor(m: FailsafeVehicle) -> float:
    if m.vd < -0.3:
        base = DRAIN_CLIMB
    elif m.vd > 0.3:
        base = DRAIN_DESCENT
    else:
        base = DRAIN_HOVER
    # forward flight: slightly cheaper than hover around 8 m/s, dearer when fast (induced + parasite)
    v = m.airspeed
    return base * (1.0 - 0.12 * min(v, 8.0) / 8.0 + 0.004 * max(v - 8.0, 0.0) ** 2)


def battery_step(m: FailsafeVehicle, dt: float, factor: float) -> None:
    m.battery = max(0.0, m.battery - factor * dt / m.endurance_s)
    m.current_a = factor * 22.0  # a 5 Ah 4S pack at ~22 A hover


def dock_charge(m: FailsafeVehicle, dt: float) -> None:
    """A disarmed vehicle on its dock (within 3 m of home) charges over SIM_DOCK_CHG_MIN minutes."""
    minutes = m.params["SIM_DOCK_CHG_MIN"]
    if minutes <= 0 or m.battery >= 1.0:
        return
    if math.hypot(*offset_ne(m.home[0], m.home[1], m.lat, m.lon)) > 3.0:
        return
    m.battery = min(1.0, m.battery + dt / (minutes * 60.0))
    if m.battery > m.params["BAT_LOW_THR"]:
        m._bat_level = 0  # the next flight's low/critical failsafes arm again


def voltage(m: FailsafeVehicle) -> float:
    cell = 3.5 + 0.7 * m.battery - 0.004 * m.current_a
    return cell * CELLS


def check(m: FailsafeVehicle) -> None:
    p = m.params
    in_air = not m.landed
    level = 3 if m.battery <= p["BAT_EMERGEN_THR"] else 2 if m.battery <= p["BAT_CRIT_THR"] else (
        1 if m.battery <= p["BAT_LOW_THR"] else 0)
    if level > m._bat_level:
        m._bat_level = level
        if level == 1:
            m.say(4, "Low battery level, return advised")
            if in_air and m.mode not in ("AUTO.RTL", "AUTO.LAND"):
                m.say(1, "Failsafe: low battery, returning")
                m.mode = "AUTO.RTL"
                m._on_mode_enter("AUTO.RTL")
        elif level >= 2:
            m.say(2, "Critical battery level, landing")
            if in_air and m.mode != "AUTO.LAND":
                m.mode = "AUTO.LAND"
                m._hold = (m.lat, m.lon, m.alt_rel)
    if in_air:
        check_fence(m)
        check_link(m)


def check_link(m: FailsafeVehicle) -> None:
    p = m.params
    if m._gcs_seen is None or m._dll:
        return
    if m.t - m._gcs_seen > max(p["COM_DL_LOSS_T"], m.dll_floor_s):
        m._dll = True
        m.say(2, "Connection to ground station lost")
        act = int(p["NAV_DLL_ACT"])
        failsafe_action(m, {1: "AUTO.LOITER", 2: "AUTO.RTL", 3: "AUTO.LAND"}.get(act))


def failsafe_action(m: FailsafeVehicle, mode: str | None) -> None:
    if mode is None or m.mode == mode or (mode == "AUTO.RTL" and m.mode == "AUTO.LAND"):
        return
    m.say(1, f"Failsafe activated: {mode.split('.')[-1].lower()}")
    m.mode = mode
    m._on_mode_enter(mode)


def check_fence(m: FailsafeVehicle) -> None:
    breach = fence_breach(m)
    if breach and not m._fence_breached:
        m._fence_breached = True
        m.say(1, f"Geofence breached: {breach}")
        act = int(m.params["GF_ACTION"])
        failsafe_action(m, {2: "AUTO.LOITER", 3: "AUTO.RTL", 5: "AUTO.LAND"}.get(act))
    elif not breach:
        m._fence_breached = False


def fence_breach(m: FailsafeVehicle) -> str:
    """Why the current position is outside the geofence, or '' when inside."""
    p = m.params
    max_h, max_v = p["GF_MAX_HOR_DIST"], p["GF_MAX_VER_DIST"]
    if max_v > 0 and m.alt_rel > max_v:
        return "altitude limit"
    if max_h > 0 and math.hypot(*offset_ne(m.home[0], m.home[1], m.lat, m.lon)) > max_h:
        return "distance limit"
    fence = m.store.plans[1]
    inclusion_seen = inside_any = False
    i = 0
    while i < len(fence):
        it = fence[i]
        if it.command in (FENCE_POLYGON_INCLUSION, FENCE_POLYGON_EXCLUSION):
            n = max(int(it.param1), 1)
            poly = [(f.lat, f.lon) for f in fence[i:i + n]]
            inside = _in_polygon(m.lat, m.lon, poly)
            i += n
        elif it.command in (FENCE_CIRCLE_INCLUSION, FENCE_CIRCLE_EXCLUSION):
            inside = math.hypot(*offset_ne(it.lat, it.lon, m.lat, m.lon)) <= it.param1
            i += 1
        else:
            i += 1
            continue
        if it.command in (FENCE_POLYGON_INCLUSION, FENCE_CIRCLE_INCLUSION):
            inclusion_seen = True
            inside_any = inside_any or inside
        elif inside:
            return "inside an exclusion zone"
    if inclusion_seen and not inside_any:
        return "outside the inclusion zone"
    return ""


def _in_polygon(lat: float, lon: float, poly: Sequence[tuple[float, float]]) -> bool:
    inside = False
    j = len(poly) - 1
    for i in range(len(poly)):
        yi, xi = poly[i]
        yj, xj = poly[j]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / ((yj - yi) or 1e-12) + xi:
            inside = not inside
        j = i
    return inside
