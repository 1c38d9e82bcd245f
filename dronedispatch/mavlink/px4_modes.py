"""Flight-mode names from HEARTBEAT custom_mode, and back (pure).

PX4 packs its mode as ``main_mode << 16 | sub_mode << 24`` in custom_mode, with
MAV_MODE_FLAG_CUSTOM_MODE_ENABLED set in base_mode. Names follow QGroundControl/MAVSDK usage
("AUTO.MISSION", "POSCTL"). ArduPilot copter puts a plain mode number in custom_mode.
"""

from __future__ import annotations

MAV_AUTOPILOT_ARDUPILOTMEGA = 3
MAV_AUTOPILOT_PX4 = 12
MAV_MODE_FLAG_CUSTOM_MODE_ENABLED = 1
MAV_MODE_FLAG_SAFETY_ARMED = 128

PX4_MAIN = {1: "MANUAL", 2: "ALTCTL", 3: "POSCTL", 4: "AUTO", 5: "ACRO", 6: "OFFBOARD", 7: "STABILIZED", 8: "RATTITUDE"}
PX4_AUTO_SUB = {
    1: "READY",
    2: "TAKEOFF",
    3: "LOITER",
    4: "MISSION",
    5: "RTL",
    6: "LAND",
    8: "FOLLOW_TARGET",
    9: "PRECLAND",
    10: "VTOL_TAKEOFF",
}
#: POSCTL sub-mode 1 is PX4's orbit.
PX4_POSCTL_SUB = {1: "ORBIT", 2: "SLOW"}

ARDUCOPTER_MODES = {
    0: "STABILIZE",
    1: "ACRO",
    2: "ALT_HOLD",
    3: "AUTO",
    4: "GUIDED",
    5: "LOITER",
    6: "RTL",
    7: "CIRCLE",
    9: "LAND",
    11: "DRIFT",
    13: "SPORT",
    14: "FLIP",
    15: "AUTOTUNE",
    16: "POSHOLD",
    17: "BRAKE",
    18: "THROW",
    19: "AVOID_ADSB",
    20: "GUIDED_NOGPS",
    21: "SMART_RTL",
    22: "FLOWHOLD",
    23: "FOLLOW",
    24: "ZIGZAG",
    25: "SYSTEMID",
    26: "AUTOROTATE",
    27: "AUTO_RTL",
}


def decode_px4(custom_mode: int) -> str:
    """PX4 mode name for a custom_mode value; "UNKNOWN(0x...)" when it is not one PX4 uses."""
    main = (custom_mode >> 16) & 0xFF
    sub = (custom_mode >> 24) & 0xFF
    name = PX4_MAIN.get(main)
    if name is None:
        return f"UNKNOWN(0x{custom_mode:08x})"
    if main == 4:
        return f"AUTO.{PX4_AUTO_SUB.get(sub, str(sub))}" if sub else "AUTO"
    if main == 3 and sub in PX4_POSCTL_SUB:
        return f"POSCTL.{PX4_POSCTL_SUB[sub]}"
    return name


def encode_px4(name: str) -> tuple[int, int]:
    """(main_mode, sub_mode) for a PX4 mode name such as "AUTO.LOITER" or "POSCTL"."""
    upper = name.strip().upper()
    main_name, _, sub_name = upper.partition(".")
    mains = {v: k for k, v in PX4_MAIN.items()}
    if main_name not in mains:
        raise ValueError(f"unknown PX4 mode {name!r}")
    main = mains[main_name]
    if not sub_name:
        return main, 0
    subs = PX4_AUTO_SUB if main == 4 else PX4_POSCTL_SUB if main == 3 else {}
    for k, v in subs.items():
        if v == sub_name:
            return main, k
    raise ValueError(f"unknown PX4 mode {name!r}")


def px4_custom_mode(name: str) -> int:
    main, sub = encode_px4(name)
    return main << 16 | sub << 24


def decode_ardupilot_copter(custom_mode: int) -> str:
    return ARDUCOPTER_MODES.get(custom_mode, f"UNKNOWN({custom_mode})")


def encode_ardupilot_copter(name: str) -> int:
    for k, v in ARDUCOPTER_MODES.items():
        if v == name.strip().upper():
            return k
    raise ValueError(f"unknown ArduPilot copter mode {name!r}")


def decode_mode(autopilot: int, base_mode: int, custom_mode: int) -> str:
    """Mode name as shown to pilots, from the fields of one HEARTBEAT."""
    if not base_mode & MAV_MODE_FLAG_CUSTOM_MODE_ENABLED:
        return "UNKNOWN"
    if autopilot == MAV_AUTOPILOT_ARDUPILOTMEGA:
        return decode_ardupilot_copter(custom_mode)
    return decode_px4(custom_mode)
