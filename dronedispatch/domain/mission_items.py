"""Mission items as the vehicle stores them, independent of any wire encoding.

The MAVLink mission protocol carries these as MISSION_ITEM_INT; the link layer converts, the
planner and templates produce them, the simulator executes them. Only the *_INT global frames are
used (coordinates travel as degrees * 1e7), never the float variants.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class Frame(IntEnum):
    """MAV_FRAME values we emit or accept."""

    GLOBAL = 0  # altitude above mean sea level (AMSL)
    MISSION = 2  # not a position: DO_* and other non-navigation items
    GLOBAL_RELATIVE_ALT = 3  # altitude above home (what QGroundControl writes into .plan files)
    GLOBAL_INT = 5
    GLOBAL_RELATIVE_ALT_INT = 6
    GLOBAL_TERRAIN_ALT_INT = 11


class Cmd(IntEnum):
    """MAV_CMD values used in missions and commands (the subset PX4 multicopters run)."""

    NAV_WAYPOINT = 16
    NAV_LOITER_UNLIM = 17
    NAV_LOITER_TURNS = 18
    NAV_LOITER_TIME = 19
    NAV_RETURN_TO_LAUNCH = 20
    NAV_LAND = 21
    NAV_TAKEOFF = 22
    NAV_LOITER_TO_ALT = 31
    DO_ORBIT = 34
    NAV_DELAY = 93
    DO_SET_MODE = 176
    DO_JUMP = 177
    DO_CHANGE_SPEED = 178
    DO_SET_HOME = 179
    DO_SET_ROI_LOCATION = 195
    DO_SET_ROI_NONE = 197
    DO_REPOSITION = 192
    DO_PAUSE_CONTINUE = 193
    DO_SET_ROI = 201
    DO_DIGICAM_CONTROL = 203
    DO_MOUNT_CONTROL = 205
    DO_SET_CAM_TRIGG_DIST = 206
    DO_GIMBAL_MANAGER_PITCHYAW = 1000
    COMPONENT_ARM_DISARM = 400
    GET_HOME_POSITION = 410
    MISSION_START = 300
    SET_MESSAGE_INTERVAL = 511
    REQUEST_MESSAGE = 512
    IMAGE_START_CAPTURE = 2000
    IMAGE_STOP_CAPTURE = 2001
    VIDEO_START_CAPTURE = 2500
    VIDEO_STOP_CAPTURE = 2501
    VIDEO_START_STREAMING = 2502
    VIDEO_STOP_STREAMING = 2503


class MissionType(IntEnum):
    MISSION = 0
    FENCE = 1
    RALLY = 2
    ALL = 255


#: Commands whose x/y/z are a position (they travel in a global frame).
POSITIONAL_COMMANDS = frozenset(
    {
        Cmd.NAV_WAYPOINT,
        Cmd.NAV_LOITER_UNLIM,
        Cmd.NAV_LOITER_TURNS,
        Cmd.NAV_LOITER_TIME,
        Cmd.NAV_LAND,
        Cmd.NAV_TAKEOFF,
        Cmd.NAV_LOITER_TO_ALT,
        Cmd.DO_SET_ROI_LOCATION,
        Cmd.DO_REPOSITION,
        Cmd.DO_ORBIT,
    }
)


@dataclass(frozen=True, slots=True)
class MissionItem:
    """One mission item. Latitude/longitude in degrees, altitude in metres in ``frame``."""

    command: int
    lat: float = 0.0
    lon: float = 0.0
    alt: float = 0.0
    param1: float = 0.0
    param2: float = 0.0
    param3: float = 0.0
    param4: float = float("nan")
    frame: int = Frame.GLOBAL_RELATIVE_ALT_INT
    autocontinue: bool = True

    @property
    def x(self) -> int:
        """Latitude as carried by MISSION_ITEM_INT (degrees * 1e7)."""
        return round(self.lat * 1e7)

    @property
    def y(self) -> int:
        """Longitude as carried by MISSION_ITEM_INT (degrees * 1e7)."""
        return round(self.lon * 1e7)

    @property
    def is_positional(self) -> bool:
        return self.command in POSITIONAL_COMMANDS

    def to_dict(self, seq: int) -> dict[str, Any]:
        """The item as JSON stores and the API shows it; NaN (PX4's "unchanged") travels as null."""
        return {
            "seq": seq,
            "command": int(self.command),
            "frame": int(self.frame),
            "lat": self.lat,
            "lon": self.lon,
            "alt": self.alt,
            "params": [None if math.isnan(p) else p for p in (self.param1, self.param2, self.param3, self.param4)],
            "autocontinue": self.autocontinue,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MissionItem:
        """The inverse of :meth:`to_dict`; ValueError naming the field when ``d`` is not an item."""
        try:
            params = [math.nan if v is None else float(v) for v in d["params"]]
            if len(params) != 4:
                raise ValueError(f"params has {len(params)} values, an item has 4")
            return cls(
                command=int(d["command"]),
                lat=float(d["lat"]),
                lon=float(d["lon"]),
                alt=float(d["alt"]),
                param1=params[0],
                param2=params[1],
                param3=params[2],
                param4=params[3],
                frame=int(d["frame"]),
                autocontinue=bool(d.get("autocontinue", True)),
            )
        except KeyError as exc:
            raise ValueError(f"mission item without {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"mission item {dict(d)!r}: {exc}") from None

    @classmethod
    def from_int_fields(
        cls,
        *,
        command: int,
        frame: int,
        x: int,
        y: int,
        z: float,
        param1: float = 0.0,
        param2: float = 0.0,
        param3: float = 0.0,
        param4: float = 0.0,
        autocontinue: int | bool = True,
    ) -> MissionItem:
        """Build an item from the integer-coordinate fields of MISSION_ITEM_INT."""
        return cls(
            command=command,
            lat=x / 1e7,
            lon=y / 1e7,
            alt=z,
            param1=param1,
            param2=param2,
            param3=param3,
            param4=param4,
            frame=frame,
            autocontinue=bool(autocontinue),
        )


def waypoint(lat: float, lon: float, alt: float, hold_s: float = 0.0, accept_radius_m: float = 0.0) -> MissionItem:
    return MissionItem(Cmd.NAV_WAYPOINT, lat, lon, alt, param1=hold_s, param2=accept_radius_m)


def takeoff(lat: float, lon: float, alt: float) -> MissionItem:
    return MissionItem(Cmd.NAV_TAKEOFF, lat, lon, alt)


def loiter_unlimited(lat: float, lon: float, alt: float, radius_m: float = 0.0) -> MissionItem:
    return MissionItem(Cmd.NAV_LOITER_UNLIM, lat, lon, alt, param3=radius_m)


def loiter_time(lat: float, lon: float, alt: float, seconds: float) -> MissionItem:
    return MissionItem(Cmd.NAV_LOITER_TIME, lat, lon, alt, param1=seconds)


def return_to_launch() -> MissionItem:
    return MissionItem(Cmd.NAV_RETURN_TO_LAUNCH, frame=Frame.MISSION, param4=0.0)


def land(lat: float, lon: float) -> MissionItem:
    return MissionItem(Cmd.NAV_LAND, lat, lon, 0.0)


def roi_location(lat: float, lon: float, alt: float = 0.0) -> MissionItem:
    return MissionItem(Cmd.DO_SET_ROI_LOCATION, lat, lon, alt, param4=0.0)


def change_speed(speed_m_s: float) -> MissionItem:
    # param1 1 = ground speed; param3 -1 = leave throttle unchanged
    return MissionItem(Cmd.DO_CHANGE_SPEED, frame=Frame.MISSION, param1=1, param2=speed_m_s, param3=-1, param4=0.0)
