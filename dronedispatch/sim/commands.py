"""COMMAND_LONG / COMMAND_INT for the autopilot component, mapped onto :class:`VehicleModel`.

Pure: returns the MAV_RESULT; the shell sends the COMMAND_ACK. Denials follow PX4: a check that
may pass later (pre-arm, mode not available yet) is TEMPORARILY_REJECTED, a request that can never
succeed in this state is DENIED, an unknown command is UNSUPPORTED; every denial also queues a
STATUSTEXT on the model saying why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dronedispatch.domain.mission_items import Cmd, Frame
from dronedispatch.sim.model import VehicleModel
from dronedispatch.sim.modes import MODE_BY_CUSTOM

ACCEPTED, TEMPORARILY_REJECTED, DENIED, UNSUPPORTED, FAILED, IN_PROGRESS = 0, 1, 2, 3, 4, 5
FORCE_MAGIC = 21196
DO_SET_MISSION_CURRENT = 224


@dataclass(frozen=True, slots=True)
class Command:
    """A command as received, positions already in degrees (COMMAND_INT x/y are scaled here)."""

    command: int
    params: tuple[float, float, float, float, float, float, float]
    frame: int = Frame.GLOBAL  # COMMAND_LONG positions are AMSL unless the command says otherwise
    is_int: bool = False

    @classmethod
    def from_long(cls, msg: object) -> Command:
        m = msg
        return cls(m.command, (m.param1, m.param2, m.param3, m.param4, m.param5, m.param6, m.param7))  # type: ignore[attr-defined]

    @classmethod
    def from_int(cls, msg: object) -> Command:
        m = msg
        x, y = m.x, m.y  # type: ignore[attr-defined]
        lat = x / 1e7 if x != 0x7FFFFFFF else math.nan
        lon = y / 1e7 if y != 0x7FFFFFFF else math.nan
        return cls(m.command, (m.param1, m.param2, m.param3, m.param4, lat, lon, m.z), m.frame, True)  # type: ignore[attr-defined]


def as_int(v: float) -> int:
    """A command parameter as an integer; NaN and out-of-range values count as 0 ('unset')."""
    return int(v) if v == v and abs(v) < 2**31 else 0


def _nan(v: float) -> bool:
    return v != v


MAX_ALT_M = 10000.0  # sanity bound for any commanded altitude


def _position(model: VehicleModel, c: Command) -> tuple[float, float, float] | None:
    """(lat, lon, alt above home) of a positional command; NaN fields mean 'where you are'.

    None when the position is not a place on Earth (out of range, infinite, absurd altitude).
    """
    p = c.params
    lat = model.lat if _nan(p[4]) or (not c.is_int and p[4] == 0 and p[5] == 0) else p[4]
    lon = model.lon if _nan(p[5]) or (not c.is_int and p[4] == 0 and p[5] == 0) else p[5]
    if _nan(p[6]):
        alt = model.alt_rel
    elif c.frame in (Frame.GLOBAL_RELATIVE_ALT, Frame.GLOBAL_RELATIVE_ALT_INT, Frame.GLOBAL_TERRAIN_ALT_INT, 10):
        alt = p[6]
    else:
        alt = p[6] - model.home[2]
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0 and abs(alt) <= MAX_ALT_M):
        return None
    return lat, lon, alt


def handle(model: VehicleModel, c: Command) -> int:
    """Apply one autopilot command to the model; the MAV_RESULT to acknowledge with."""
    p = c.params
    cmd = c.command
    if cmd == Cmd.COMPONENT_ARM_DISARM:
        force = as_int(p[1]) == FORCE_MAGIC
        if p[0] >= 0.5:
            ok, _ = model.arm(force)
            if not ok and model.interlock_reason() is not None:
                return DENIED  # a closed dock door: retrying will not help until someone opens it
            return ACCEPTED if ok else TEMPORARILY_REJECTED
        ok, _ = model.disarm(force)
        return ACCEPTED if ok else DENIED
    if cmd == Cmd.DO_SET_MODE:
        if not as_int(p[0]) & 1:  # MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
            model.say(3, "Mode change denied: only PX4 custom modes are supported")
            return DENIED
        name = MODE_BY_CUSTOM.get((as_int(p[1]) << 16) | (as_int(p[2]) << 24))
        if name is None:
            model.say(3, f"Mode change denied: unknown mode {as_int(p[1])}/{as_int(p[2])}")
            return DENIED
        ok, _ = model.set_mode(name)
        return ACCEPTED if ok else TEMPORARILY_REJECTED
    if cmd == Cmd.NAV_TAKEOFF:
        alt = None if _nan(p[6]) else (p[6] - model.home[2] if c.frame in (Frame.GLOBAL, Frame.GLOBAL_INT) else p[6])
        if alt is not None and not 0 < alt <= MAX_ALT_M:
            model.say(3, "Takeoff denied: altitude out of range")
            return DENIED
        ok, _ = model.takeoff(alt)
        if not ok:
            model.say(3, "Takeoff denied: vehicle not ready")
        return ACCEPTED if ok else TEMPORARILY_REJECTED
    if cmd == Cmd.NAV_LAND:
        ok, _ = model.set_mode("AUTO.LAND")
        return ACCEPTED if ok else TEMPORARILY_REJECTED
    if cmd == Cmd.NAV_RETURN_TO_LAUNCH:
        ok, _ = model.set_mode("AUTO.RTL")
        return ACCEPTED if ok else TEMPORARILY_REJECTED
    if cmd == Cmd.MISSION_START:
        first = 0 if _nan(p[0]) else as_int(p[0])
        if not model.items:
            model.say(3, "Mission start denied: no mission uploaded")
            return DENIED
        if not 0 <= first < len(model.items):
            model.say(3, f"Mission start denied: item {first} out of range")
            return DENIED
        ok, _ = model.start_mission(first)
        return ACCEPTED if ok else TEMPORARILY_REJECTED
    if cmd == Cmd.DO_PAUSE_CONTINUE:
        if as_int(p[0]) == 0:
            if not model.armed or model.landed:
                model.say(3, "Pause denied: not flying")
                return DENIED
            model.set_mode("AUTO.LOITER")
            return ACCEPTED
        if not model.items:
            model.say(3, "Continue denied: no mission")
            return DENIED
        ok, _ = model.set_mode("AUTO.MISSION")
        return ACCEPTED if ok else TEMPORARILY_REJECTED
    if cmd == Cmd.DO_REPOSITION:
        if not model.armed:
            model.say(3, "Reposition denied: vehicle not armed")
            return DENIED
        pos = _position(model, c)
        if pos is None:
            model.say(3, "Reposition denied: position out of range")
            return DENIED
        lat, lon, alt = pos
        speed = None if _nan(p[0]) or p[0] <= 0 else min(p[0], model.params["MPC_XY_VEL_MAX"])
        ok, why = model.reposition(lat, lon, alt, speed)
        if not ok:
            model.say(3, f"Reposition denied: {why}")
        return ACCEPTED if ok else TEMPORARILY_REJECTED
    if cmd == Cmd.DO_ORBIT:
        pos = _position(model, c)
        radius = p[0] if not _nan(p[0]) else 10.0
        speed = p[1] if not _nan(p[1]) and p[1] != 0 else 1.0
        if pos is None or not abs(speed) <= model.params["MPC_XY_VEL_MAX"]:
            model.say(3, "Orbit denied: centre or speed out of range")
            return DENIED
        lat, lon, alt = pos
        if not model.armed or model.landed:
            model.say(3, "Orbit denied: not flying")
            return DENIED
        ok, _ = model.orbit(lat, lon, alt, radius, speed)
        return ACCEPTED if ok else DENIED
    if cmd == Cmd.DO_CHANGE_SPEED:
        if not math.isfinite(p[1]):
            return DENIED
        model.change_speed(p[1])
        return ACCEPTED
    if cmd == DO_SET_MISSION_CURRENT:
        return ACCEPTED if model.set_current(as_int(p[0])) else DENIED
    if cmd == Cmd.DO_SET_HOME:
        if as_int(p[0]) == 1:
            model.home = (model.lat, model.lon, model.alt_amsl)
        else:
            pos = _position(model, c)
            alt_amsl = model.home[2] if _nan(p[6]) else p[6]
            if pos is None or not abs(alt_amsl) <= MAX_ALT_M:
                model.say(3, "Set home denied: position out of range")
                return DENIED
            model.home = (pos[0], pos[1], alt_amsl)
        return ACCEPTED
    return UNSUPPORTED
