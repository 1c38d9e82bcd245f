from __future__ import annotations

from pymavlink.dialects.v20 import common as mav

from dronedispatch.mavlink.state import MAV_SYS_STATUS_PREARM_CHECK, StateTracker, VehicleState

SENSORS = 0x1 | 0x2 | 0x20 | MAV_SYS_STATUS_PREARM_CHECK


def sys_status(present: int, health: int) -> mav.MAVLink_sys_status_message:
    return mav.MAVLink_sys_status_message(present, present, health, 250, 16000, 500, 80, 0, 0, 0, 0, 0, 0)


def test_prearm_check_is_tracked_only_when_the_vehicle_reports_it() -> None:
    tracker = StateTracker(VehicleState(sysid=1))
    tracker.apply(sys_status(0x1 | 0x2, 0x1 | 0x2), 0.0)
    assert tracker.state.prearm_ok is None, "a vehicle that does not report the bit is not judged by it"
    changed, _ = tracker.apply(sys_status(SENSORS, SENSORS & ~MAV_SYS_STATUS_PREARM_CHECK), 1.0)
    assert tracker.state.prearm_ok is False and "prearm_ok" in changed
    changed, _ = tracker.apply(sys_status(SENSORS, SENSORS), 2.0)
    assert tracker.state.prearm_ok is True and "prearm_ok" in changed
    changed, _ = tracker.apply(sys_status(SENSORS, SENSORS), 3.0)
    assert "prearm_ok" not in changed
