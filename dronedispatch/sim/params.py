"""PX4 parameters the simulated vehicle reads, with PX4's defaults and types.

The parameter protocol sends every value as a float32 field; integer parameters travel with their
bits reinterpreted (PX4 and MAVSDK use MAV_PARAM_TYPE_INT32 this way), see :func:`wire_value`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

INT32 = 6  # MAV_PARAM_TYPE_INT32
REAL32 = 9  # MAV_PARAM_TYPE_REAL32


@dataclass(frozen=True, slots=True)
class ParamSpec:
    name: str
    default: float
    type: int = REAL32
    lo: float = -1e9
    hi: float = 1e9


SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("MIS_TAKEOFF_ALT", 2.5, REAL32, 0, 80),
    ParamSpec("RTL_RETURN_ALT", 60.0, REAL32, 0, 150),
    ParamSpec("RTL_DESCEND_ALT", 30.0, REAL32, 2, 100),
    ParamSpec("RTL_LAND_DELAY", 0.0, REAL32, -1, 300),
    ParamSpec("RTL_MIN_DIST", 10.0, REAL32, 0.5, 100),
    ParamSpec("MPC_XY_CRUISE", 5.0, REAL32, 3, 20),
    ParamSpec("MPC_XY_VEL_MAX", 12.0, REAL32, 0, 30),
    ParamSpec("MPC_ACC_HOR", 3.0, REAL32, 2, 15),
    ParamSpec("MPC_Z_V_AUTO_UP", 3.0, REAL32, 0.5, 8),
    ParamSpec("MPC_Z_V_AUTO_DN", 1.5, REAL32, 0.5, 4),
    ParamSpec("MPC_TKO_SPEED", 1.5, REAL32, 0.5, 8),
    ParamSpec("MPC_LAND_SPEED", 0.7, REAL32, 0.6, 4),
    ParamSpec("MPC_LAND_ALT1", 10.0, REAL32, 0, 122),
    ParamSpec("MPC_LAND_ALT2", 5.0, REAL32, 0, 122),
    ParamSpec("MPC_YAWRAUTO_MAX", 45.0, REAL32, 5, 360),
    ParamSpec("NAV_ACC_RAD", 2.0, REAL32, 0.05, 200),
    ParamSpec("NAV_MC_ALT_RAD", 0.8, REAL32, 0.05, 200),  # altitude acceptance of a multicopter's take-off item
    ParamSpec("NAV_LOITER_RAD", 80.0, REAL32, 1, 1000),
    ParamSpec("COM_DL_LOSS_T", 10.0, INT32, 5, 300),
    ParamSpec("NAV_DLL_ACT", 0.0, INT32, 0, 6),  # 0 off, 1 hold, 2 return, 3 land, 5 terminate, 6 lockdown
    ParamSpec("COM_DISARM_PRFLT", 10.0, REAL32, -1, 20),
    ParamSpec("COM_DISARM_LAND", 2.0, REAL32, -1, 20),
    ParamSpec("BAT_LOW_THR", 0.15, REAL32, 0.12, 0.5),
    ParamSpec("BAT_CRIT_THR", 0.07, REAL32, 0.05, 0.25),
    ParamSpec("BAT_EMERGEN_THR", 0.05, REAL32, 0.03, 0.1),
    ParamSpec("COM_LOW_BAT_ACT", 3.0, INT32, 0, 3),
    ParamSpec("GF_ACTION", 2.0, INT32, 0, 5),  # 0 none, 1 warn, 2 hold, 3 return, 4 terminate, 5 land
    ParamSpec("GF_MAX_HOR_DIST", 0.0, REAL32, 0, 10000),
    ParamSpec("GF_MAX_VER_DIST", 0.0, REAL32, 0, 10000),
    ParamSpec("MAV_SYS_ID", 1.0, INT32, 1, 250),
    ParamSpec("SYS_AUTOSTART", 10040.0, INT32, 0, 9999999),
    ParamSpec("SIM_WIND_SPD", 0.0, REAL32, 0, 40),
    ParamSpec("SIM_WIND_DIR", 0.0, REAL32, 0, 360),
    # Not PX4: minutes a dock takes to charge an empty battery while the vehicle sits disarmed at
    # home (0 turns charging off, as on a bare PX4 vehicle).
    ParamSpec("SIM_DOCK_CHG_MIN", 45.0, REAL32, 0, 1000),
)
BY_NAME = {s.name: s for s in SPECS}


def wire_value(spec: ParamSpec, value: float) -> float:
    """The float32 field carrying ``value``: integers travel as their int32 bit pattern."""
    if spec.type == INT32:
        return struct.unpack("<f", struct.pack("<i", int(value)))[0]
    return float(value)


def from_wire(spec: ParamSpec, raw: float, raw_type: int) -> float:
    """Decode a PARAM_SET value; accepts integers sent bytewise (INT32) or as plain floats."""
    if spec.type == INT32 and raw_type == INT32:
        return float(struct.unpack("<i", struct.pack("<f", raw))[0])
    return float(raw)


class Params:
    """A vehicle's parameter table (name → value), defaults from :data:`SPECS`."""

    def __init__(self, overrides: dict[str, float] | None = None) -> None:
        self.values: dict[str, float] = {s.name: s.default for s in SPECS}
        for k, v in (overrides or {}).items():
            self.values[k] = float(v)

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    def set(self, name: str, value: float) -> bool:
        """Set a value clamped to its range; False if the name is unknown or the value not finite."""
        spec = BY_NAME.get(name)
        if spec is None or value != value or value in (float("inf"), float("-inf")):
            return False
        v = min(max(value, spec.lo), spec.hi)
        self.values[name] = float(int(v)) if spec.type == INT32 else v
        return True

    def index(self, name: str) -> int:
        return [s.name for s in SPECS].index(name)
