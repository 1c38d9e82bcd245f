"""The mission executor of :class:`~dronedispatch.sim.model.VehicleModel`, as a mixin.

A small interpreter over the stored mission items that advances on "reached" the way PX4's
navigator does: DO items run at once (bounded, so a DO_JUMP loop cannot spin), a navigation item
flies to its point, reports MISSION_ITEM_REACHED, holds for its hold/loiter time, then advances.
It works on the model's state (``seq``, ``mission_state``, ``_hold`` ...) and guidance methods.
"""

from __future__ import annotations

import math
from typing import Protocol

from dronedispatch.domain.mission_items import Cmd, Frame, MissionItem
from dronedispatch.sim.geodesy import offset_ne
from dronedispatch.sim.modes import MS_ACTIVE, MS_COMPLETE
from dronedispatch.sim.params import Params

_NAV = frozenset({Cmd.NAV_WAYPOINT, Cmd.NAV_LOITER_UNLIM, Cmd.NAV_LOITER_TURNS, Cmd.NAV_LOITER_TIME,
                  Cmd.NAV_RETURN_TO_LAUNCH, Cmd.NAV_LAND, Cmd.NAV_TAKEOFF, Cmd.NAV_LOITER_TO_ALT,
                  Cmd.NAV_DELAY})



class MissionVehicle(Protocol):
    """What the mission executor reads, sets and calls on :class:`~.model.VehicleModel`.

    Stated here rather than importing the model, which calls this module: no import cycle.
    """

    # set here
    seq: int
    mission_state: int
    mode: str
    home: tuple[float, float, float]
    roi: tuple[float, float, float] | None
    _hold: tuple[float, float, float] | None
    _item_phase: str
    _item_timer: float
    _needs_takeoff: bool
    # read here
    params: Params
    armed: bool
    lat: float
    lon: float
    alt_rel: float
    reached: list[int]
    _jumps: dict[int, int]

    @property
    def items(self) -> list[MissionItem]: ...

    @property
    def landed(self) -> bool: ...

    @property
    def alt_amsl(self) -> float: ...

    @property
    def cruise(self) -> float: ...

    def say(self, severity: int, text: str) -> None: ...

    def change_speed(self, speed: float) -> None: ...

    def _on_mode_enter(self, name: str) -> None: ...

    def _goto(self, lat: float, lon: float, alt_rel: float, speed: float, dt: float,
              yaw_to: tuple[float, float] | None = None, climb: float | None = None) -> tuple[float, float]: ...

    def _climb(self, alt_rel: float, dt: float) -> bool: ...

    def _land(self, dt: float, lat: float | None = None, lon: float | None = None) -> bool: ...


def alt_of(m: MissionVehicle, it: MissionItem) -> float:
    if it.frame in (Frame.GLOBAL, Frame.GLOBAL_INT):
        return it.alt - m.home[2]
    return it.alt


def step(m: MissionVehicle, dt: float) -> None:
    items = m.items
    if not m.armed:
        return
    if m.mission_state == MS_COMPLETE or not items:
        hold = m._hold or (m.lat, m.lon, m.alt_rel)
        if not m.landed:
            m._goto(hold[0], hold[1], hold[2], m.cruise, dt)
        return
    m.mission_state = MS_ACTIVE
    for _ in range(64):  # DO items run immediately; bounded so a jump loop cannot spin
        if m.seq >= len(items):
            mission_done(m)
            return
        it = items[m.seq]
        if it.command in _NAV:
            break
        do_item(m, it)
    else:
        return
    if m._needs_takeoff and it.command != Cmd.NAV_TAKEOFF:
        m._hold = (m.lat, m.lon, m.alt_rel)
        if m._climb(max(m.params["MIS_TAKEOFF_ALT"], min(alt_of(m, it), 10.0)), dt):
            m._needs_takeoff = False
        return
    nav_item(m, it, dt)


def do_item(m: MissionVehicle, it: MissionItem) -> None:
    c = it.command
    if c == Cmd.DO_JUMP:
        done = m._jumps.get(m.seq, 0)
        if it.param2 < 0 or done < it.param2:
            m._jumps[m.seq] = done + 1
            m.seq = int(it.param1)
            m._item_phase = ""
            return
    elif c == Cmd.DO_CHANGE_SPEED:
        m.change_speed(it.param2)
    elif c in (Cmd.DO_SET_ROI_LOCATION, Cmd.DO_SET_ROI):
        m.roi = (it.lat, it.lon, alt_of(m, it))
    elif c == Cmd.DO_SET_ROI_NONE:
        m.roi = None
    elif c == Cmd.DO_SET_HOME:
        if it.param1 == 1:
            m.home = (m.lat, m.lon, m.alt_amsl)
        else:
            m.home = (it.lat, it.lon, it.alt if it.frame in (Frame.GLOBAL, Frame.GLOBAL_INT) else m.home[2])
    advance(m)


def advance(m: MissionVehicle) -> None:
    m.seq += 1
    m._item_phase = ""
    m._item_timer = 0.0


def reach(m: MissionVehicle, seq: int) -> None:
    m.reached.append(seq)


def nav_item(m: MissionVehicle, it: MissionItem, dt: float) -> None:
    c = it.command
    alt = alt_of(m, it)
    here = it.x == 0 and it.y == 0
    lat, lon = (m.lat, m.lon) if here and not m._item_phase else (it.lat, it.lon)
    if not m._item_phase:
        m._item_phase = "goto"
        m._item_timer = 0.0
        m._hold = (lat, lon, alt)
    hold = m._hold or (lat, lon, alt)
    if c == Cmd.NAV_TAKEOFF:
        m._hold = (m.lat, m.lon, alt) if m.landed or m._item_phase == "goto" else hold
        # reached within NAV_MC_ALT_RAD of its height, as PX4 does: the next leg starts while the climb ends
        if m._climb(alt, dt) or (not m.landed and abs(alt - m.alt_rel) < m.params["NAV_MC_ALT_RAD"]):
            m._needs_takeoff = False
            reach(m, m.seq)
            advance(m)
        return
    if c == Cmd.NAV_LAND:
        if m._item_phase == "goto":
            dh, _ = m._goto(hold[0], hold[1], m.alt_rel, m.cruise, dt)
            if dh < m.params["NAV_ACC_RAD"]:
                m._item_phase = "land"
        elif m._land(dt, hold[0], hold[1]):
            reach(m, m.seq)
            m.seq = len(m.items) - 1
            m.mission_state = MS_COMPLETE
            m.say(6, "Mission finished, landed")
        return
    if c == Cmd.NAV_RETURN_TO_LAUNCH:
        reach(m, m.seq)
        m.mission_state = MS_COMPLETE
        m.mode = "AUTO.RTL"
        m._on_mode_enter("AUTO.RTL")
        return
    if c == Cmd.NAV_DELAY:
        m._goto(m.lat, m.lon, m.alt_rel, m.cruise, dt)
        m._item_timer += dt
        if m._item_timer >= max(it.param1, 0.0):
            advance(m)
        return
    if m._item_phase == "goto":
        acc = it.param2 if c == Cmd.NAV_WAYPOINT and it.param2 > 0 else m.params["NAV_ACC_RAD"]
        dh, dv = line_goto(m, hold, dt)
        if dh < acc and dv < 1.0:
            reach(m, m.seq)
            m._item_phase = "hold"
            m._item_timer = 0.0
        return
    # at the point: hold time / loiter
    m._goto(hold[0], hold[1], hold[2], m.cruise, dt)
    m._item_timer += dt
    if c == Cmd.NAV_LOITER_UNLIM:
        return
    wait = it.param1 if c in (Cmd.NAV_WAYPOINT, Cmd.NAV_LOITER_TIME) else 0.0
    if c == Cmd.NAV_LOITER_TURNS:
        wait = abs(it.param1) * 2 * math.pi * max(abs(it.param3), 1.0) / max(m.cruise, 1.0)
    if m._item_timer >= wait and it.autocontinue:
        advance(m)


def line_goto(m: MissionVehicle, to: tuple[float, float, float], dt: float) -> tuple[float, float]:
    """Fly to a mission point along the straight 3-D line from here, as PX4's
    FlightTaskAutoLineSmoothVel does: the velocity points at the point, clamped so its horizontal part
    stays within the cruise speed (and the braking distance) and its vertical part within the climb
    (MPC_Z_V_AUTO_UP) or descent rate. A gentle climb is flown at full cruise speed while climbing; only
    a leg steeper than climb rate / cruise speed slows the horizontal speed."""
    p = m.params
    dn, de = offset_ne(m.lat, m.lon, to[0], to[1])
    dist = math.hypot(dn, de)
    dz = to[2] - m.alt_rel
    v_xy = min(m.cruise, math.sqrt(2.0 * p["MPC_ACC_HOR"] * 0.8 * dist))
    v_z = min(p["MPC_Z_V_AUTO_UP"] if dz > 0 else p["MPC_Z_V_AUTO_DN"], math.sqrt(2.0 * 2.0 * abs(dz)))
    if dist < 1e-6 or abs(dz) < 1e-6 or v_xy <= 0 or v_z <= 0:
        return m._goto(to[0], to[1], to[2], m.cruise, dt)
    t = max(dist / v_xy, abs(dz) / v_z)  # the slower axis sets the pace; the other follows the line
    return m._goto(to[0], to[1], to[2], dist / t, dt, climb=abs(dz) / t if dz > 0 else None)


def mission_done(m: MissionVehicle) -> None:
    m.seq = max(len(m.items) - 1, 0)
    m.mission_state = MS_COMPLETE
    m._hold = (m.lat, m.lon, m.alt_rel)
    m.say(6, "Mission finished, loitering")
