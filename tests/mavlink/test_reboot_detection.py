"""An autopilot that restarts in flight: the simulator's restart, and how the link's state tracker notices it."""

from __future__ import annotations

from pymavlink.dialects.v20 import common as mav

from dronedispatch.domain.mission_items import takeoff, waypoint
from dronedispatch.mavlink.state import StateTracker, VehicleState, _rebooted
from dronedispatch.sim import telemetry
from dronedispatch.sim.model import VehicleModel


def position(time_boot_ms: int) -> mav.MAVLink_global_position_int_message:
    return mav.MAVLink_global_position_int_message(time_boot_ms, 373918000, 1266393000, 10000, 0, 0, 0, 0, 0)


def test_a_boot_clock_that_goes_backwards_is_a_restart() -> None:
    assert not _rebooted(None, 5)  # the first report
    assert not _rebooted(60_000, 60_020)
    assert not _rebooted(60_000, 59_000), "a datagram that arrived late over UDP is not a restart"
    assert _rebooted(60_000, 1_500)
    assert not _rebooted(0xFFFFFFFF - 10, 500), "the 32-bit clock wrapping after 49.7 days is not a restart"


def test_the_tracker_counts_restarts_and_reports_them_as_a_change() -> None:
    tracker = StateTracker(VehicleState(sysid=1))
    tracker.apply(position(90_000), 1.0)
    changed, _ = tracker.apply(position(90_050), 1.05)
    assert "reboots" not in changed and tracker.state.reboots == 0
    changed, _ = tracker.apply(position(800), 5.0)
    assert "reboots" in changed and tracker.state.reboots == 1
    changed, _ = tracker.apply(position(850), 5.05)
    assert "reboots" not in changed and tracker.state.reboots == 1


def test_the_simulated_restart_resets_the_boot_clock_and_keeps_or_clears_the_plan() -> None:
    m = VehicleModel(1, (37.3918, 126.6393, 10.0))
    m.store.replace(0, [takeoff(37.3918, 126.6393, 30.0), waypoint(37.3927, 126.6378, 30.0)])
    m.t = 120.0
    before = telemetry.global_position_int(m)[1][0]
    m.reboot(clear_mission=False)
    assert before == 120_000 and telemetry.global_position_int(m)[1][0] == 0
    assert len(m.items) == 2 and m.seq == 0
    m.t += 1.0
    m.reboot(clear_mission=True)
    assert m.items == [] and telemetry.global_position_int(m)[1][0] == 0
