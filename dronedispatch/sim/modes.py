"""PX4 flight modes, landed states and mission states as the simulator reports them."""

from __future__ import annotations

G = 9.81

#: PX4 custom modes as (main_mode, sub_mode); custom_mode = main << 16 | sub << 24.
MODES: dict[str, tuple[int, int]] = {
    "MANUAL": (1, 0), "ALTCTL": (2, 0), "POSCTL": (3, 0), "ORBIT": (3, 1), "ACRO": (5, 0),
    "OFFBOARD": (6, 0), "STABILIZED": (7, 0), "AUTO.READY": (4, 1), "AUTO.TAKEOFF": (4, 2),
    "AUTO.LOITER": (4, 3), "AUTO.MISSION": (4, 4), "AUTO.RTL": (4, 5), "AUTO.LAND": (4, 6),
}
MODE_BY_CUSTOM = {(main << 16) | (sub << 24): name for name, (main, sub) in MODES.items()}
# AUTO with sub-mode 0 is how some clients ask for AUTO; PX4 treats it as mission.
MODE_BY_CUSTOM[4 << 16] = "AUTO.MISSION"
MODE_BY_CUSTOM[(3 << 16) | (0 << 24)] = "POSCTL"

# MAV_LANDED_STATE
ON_GROUND, IN_AIR, TAKEOFF, LANDING = 1, 2, 3, 4
# MISSION_STATE (MISSION_CURRENT.mission_state)
MS_NONE, MS_NOT_STARTED, MS_ACTIVE, MS_PAUSED, MS_COMPLETE = 1, 2, 3, 4, 5
