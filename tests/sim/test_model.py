"""The pure vehicle model, mission server and wire encoder, without sockets."""

from __future__ import annotations

import math
import os
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from pymavlink.dialects.v20 import common as mavlink
from pymavlink.generator.mavcrc import x25crc_slow

from dronedispatch.domain import mission_items as mi
from dronedispatch.domain.mission_items import Cmd, MissionItem
from dronedispatch.sim import wire
from dronedispatch.sim.geodesy import offset_ne
from dronedispatch.sim.mission_server import MissionServer, MissionStore, opaque_id
from dronedispatch.sim.model import VehicleModel
from dronedispatch.sim.modes import IN_AIR, MS_COMPLETE, ON_GROUND

HOME = (37.3918, 126.6393, 5.0)


def run(m: VehicleModel, seconds: float, until=None, dt: float = 0.05) -> None:
    for _ in range(int(seconds / dt)):
        m.step(dt)
        if until is not None and until(m):
            return


def flying(alt: float = 30.0) -> VehicleModel:
    m = VehicleModel(1, HOME, cruise_speed=10.0)
    run(m, 5)
    assert m.arm()[0]
    m.takeoff(alt)
    run(m, 60, lambda m: m.mode == "AUTO.LOITER" and m.alt_rel > alt - 0.5)
    return m


def _crc32_reference(data: bytes, crc: int = 0) -> int:
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc


def test_x25_crc_matches_pymavlink() -> None:
    for n in range(0, 300, 7):
        data = os.urandom(n)
        assert wire.x25crc(data) == x25crc_slow(data).crc


def test_fast_frames_parse_with_pymavlink_and_carry_opaque_id() -> None:
    enc = wire.LinkEncoder(7)
    data = enc.fast(wire.GLOBAL_POSITION_INT, (1, 2, 3, 4, 5, 6, 7, 8, 9)) + enc.fast(
        wire.MISSION_ACK, (255, 190, 0, 0, 0xDEADBEEF))
    msgs = mavlink.MAVLink(None).parse_buffer(data)
    assert [m.get_type() for m in msgs] == ["GLOBAL_POSITION_INT", "MISSION_ACK"]
    assert msgs[0].get_srcSystem() == 7 and msgs[1].get_seq() == 1
    buf = bytes(msgs[1].get_msgbuf())  # pymavlink's dialect drops the extension: read the raw frame
    payload = buf[10:10 + buf[1]] + bytes(8)
    assert struct.unpack_from("<I", payload, 4)[0] == 0xDEADBEEF


def test_opaque_id_is_crc32_init0_no_final_xor() -> None:
    items = [mi.takeoff(37.0, 127.0, 20), mi.waypoint(37.001, 127.001, 30, hold_s=2)]
    ref = 0
    for it in items:
        ref = _crc32_reference(struct.pack("<BHB4fiif", it.frame, it.command, 1, it.param1, it.param2, it.param3,
                                           it.param4, it.x, it.y, it.alt), ref)
    assert opaque_id(items) == ref != 0
    assert opaque_id([]) == 0


def test_takeoff_mission_and_landing() -> None:
    m = VehicleModel(1, HOME, cruise_speed=10.0)
    m.store.replace(0, [mi.takeoff(HOME[0], HOME[1], 20), mi.waypoint(37.3928, 126.6393, 20),
                        mi.land(HOME[0], HOME[1])])
    assert not m.arm()[0]  # not ready right after boot
    assert m.texts[-1][1].startswith("Arming denied")
    run(m, 5)
    assert m.start_mission()[0] and m.armed
    run(m, 200, lambda m: not m.armed)
    assert m.mission_state == MS_COMPLETE and m.landed_state == ON_GROUND
    assert m.reached[:3] == [0, 1, 2]
    n, e = offset_ne(HOME[0], HOME[1], m.lat, m.lon)
    assert math.hypot(n, e) < 1.0
    assert any(t == "Disarmed by landing" for _, t in m.texts)


def test_rtl_climbs_returns_descends_and_lands() -> None:
    m = flying(20)
    m.params.set("RTL_RETURN_ALT", 40)
    m.reposition(37.3958, 126.6393, 20, None)
    run(m, 120, lambda m: m.groundspeed < 0.1 and abs(m.lat - 37.3958) < 1e-5)
    m.set_mode("AUTO.RTL")
    peak = 0.0
    for _ in range(4000):
        m.step(0.05)
        peak = max(peak, m.alt_rel)
        if not m.armed:
            break
    assert 39.0 < peak < 41.0
    assert m.landed and not m.armed
    assert math.hypot(*offset_ne(HOME[0], HOME[1], m.lat, m.lon)) < 1.0


def test_do_jump_repeats_and_roi_sets_camera_target() -> None:
    m = flying(10)
    items = [
        MissionItem(Cmd.DO_SET_ROI_LOCATION, 37.392, 126.64, 0, frame=0),
        mi.waypoint(37.3920, 126.6393, 10),
        mi.waypoint(37.3918, 126.6395, 10),
        MissionItem(Cmd.DO_JUMP, param1=1, param2=2, frame=2),
        mi.loiter_time(37.3918, 126.6393, 10, 3),
    ]
    m.store.replace(0, items)
    m.start_mission()
    run(m, 300, lambda m: m.mission_state == MS_COMPLETE)
    assert m.reached == [1, 2, 1, 2, 1, 2, 4]
    assert m.target == (37.392, 126.64)


def test_battery_failsafes_low_returns_critical_lands() -> None:
    m = flying(20)
    m.set_battery(0.14)
    m.step(0.05)
    assert m.mode == "AUTO.RTL"
    m.set_battery(0.06)
    m.step(0.05)
    assert m.mode == "AUTO.LAND"


def test_link_loss_triggers_configured_action_in_simulated_seconds() -> None:
    m = flying(20)
    m.params.set("NAV_DLL_ACT", 2)
    m.note_gcs_heartbeat()
    run(m, 9)
    assert m.mode == "AUTO.LOITER"
    run(m, 2)
    assert m.mode == "AUTO.RTL"
    m.note_gcs_heartbeat()
    assert any("regained" in t for _, t in m.texts)


def test_geofence_circle_breach_holds() -> None:
    m = flying(20)
    m.store.replace(1, [MissionItem(5003, HOME[0], HOME[1], 0, param1=50.0)])
    m.reposition(37.3918 + 0.001, 126.6393, 20, None)  # ~111 m north
    run(m, 60, lambda m: m.mode == "AUTO.LOITER" and m._fence_breached)
    assert m._fence_breached and m.mode == "AUTO.LOITER"
    assert any("Geofence breached" in t for _, t in m.texts)


def test_faults_gps_loss_and_motor_failure_land() -> None:
    m = flying(20)
    m.set_gps_loss(True)
    assert m.mode == "AUTO.LAND"
    assert not m.prearm_ok[0]
    m2 = flying(20)
    m2.motor_failure()
    run(m2, 30, lambda m: m.landed)
    assert m2.landed


def test_wind_pushes_a_vehicle_without_position_control() -> None:
    m = flying(30)
    m.wind = (8.0, 270.0)  # from the west: drifts east
    m.set_gps_loss(True)
    lon0 = m.lon
    run(m, 5)
    assert m.lon > lon0


def test_orbit_keeps_radius() -> None:
    m = flying(20)
    assert m.orbit(HOME[0], HOME[1], 20, 30, 5)[0]
    run(m, 60)
    assert m.mode == "ORBIT"
    assert abs(math.hypot(*offset_ne(HOME[0], HOME[1], m.lat, m.lon)) - 30) < 3
    assert not m.orbit(HOME[0], HOME[1], 20, 500, 5)[0]


def _item_msg(f: mavlink.MAVLink, seq: int, it: MissionItem, mission_type: int = 0) -> mavlink.MAVLink_message:
    return f.mission_item_int_encode(1, 1, seq, it.frame, it.command, 0, 1, it.param1, it.param2, it.param3,
                                     it.param4, it.x, it.y, it.alt, mission_type)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["count", "item", "poll", "clear", "list"]), st.integers(0, 6),
                          st.integers(-1, 4)), max_size=30))
def test_mission_server_survives_any_message_order(ops: list[tuple[str, int, int]]) -> None:
    store = MissionStore()
    old = [mi.waypoint(37, 127, 10)]
    store.replace(0, old)
    srv = MissionServer(store, 1)
    f = mavlink.MAVLink(None, 255, 190)
    now = 0.0
    for op, n, seq in ops:
        now += 0.1
        if op == "count":
            srv.on_count(n, 0, (255, 190), now)
        elif op == "item":
            srv.on_item(_item_msg(f, seq, mi.waypoint(37.1, 127.1, 5)), (255, 190), now)
        elif op == "poll":
            now += n
            srv.poll(now)
        elif op == "clear":
            srv.on_clear_all(0, (255, 190))
        else:
            srv.on_request_list(0, (255, 190))
        assert store.ids[0] == opaque_id(store.plans[0])


def test_takeoff_on_model_reaches_in_air() -> None:
    m = flying(15)
    assert m.landed_state == IN_AIR and abs(m.alt_rel - 15) < 0.5


def test_px4_default_timings_in_simulated_seconds() -> None:
    """px4-wire-facts.md: take-off to 30 m ~22 s, a 200 m leg ~46 s, landing from 30 m ~28 s."""
    m = VehicleModel(1, HOME)  # PX4's defaults: no fleet-file speeds
    run(m, 5)
    m.arm()
    m.takeoff(30)
    t0 = m.t
    run(m, 60, lambda m: m.mode == "AUTO.LOITER")
    assert 18 < m.t - t0 < 26
    lat, lon = HOME[0] + 200 / 111_000, HOME[1]
    t0 = m.t
    m.reposition(lat, lon, 30, None)
    run(m, 100, lambda m: abs(m.lat - lat) < 1e-6 and m.groundspeed < 0.05)
    assert 40 < m.t - t0 < 52
    m.set_mode("AUTO.LAND")
    t0 = m.t
    run(m, 60, lambda m: m.landed)
    assert 22 < m.t - t0 < 32


def test_dock_charges_a_disarmed_vehicle_at_home_only() -> None:
    m = VehicleModel(1, HOME)
    m.set_battery(0.10)
    run(m, 600)
    assert 0.31 < m.battery < 0.34  # 45 minutes for a full charge
    m.params.set("SIM_DOCK_CHG_MIN", 0)
    b = m.battery
    run(m, 60)
    assert m.battery == b
