"""Telemetry messages built from a :class:`VehicleModel`, and PX4's stream tables per link.

Each builder returns ``(FastMessage, values)``; the link frames it with its own sequence number.
Values are computed once per tick and shared by both links (see :class:`TelemetryCache`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from dronedispatch.sim import wire
from dronedispatch.sim.geodesy import offset_ne
from dronedispatch.sim.model import VehicleModel
from dronedispatch.sim.modes import MS_NONE

Built = tuple[wire.FastMessage, tuple]

# SYS_STATUS sensor bits: gyro, accel, mag, baro, GPS, angular rate, attitude, z, xy, motors, AHRS,
# prearm, battery
_SENSORS = 0x1 | 0x2 | 0x4 | 0x8 | 0x20 | 0x400 | 0x800 | 0x1000 | 0x2000 | 0x8000 | 0x200000 | 0x10000000 \
    | 0x2000000
_GPS_BIT = 0x20
_PREARM_BIT = 0x10000000
_MOTOR_BIT = 0x8000


def _ms(m: VehicleModel) -> int:
    return int((m.t - m.boot_at) * 1000.0) & 0xFFFFFFFF  # since the autopilot's last boot


def _us(m: VehicleModel) -> int:
    return int((m.t - m.boot_at) * 1e6)


def heartbeat(m: VehicleModel) -> Built:
    # type 2 quadrotor, autopilot 12 PX4, MAVLink version 3
    return wire.HEARTBEAT, (m.custom_mode, 2, 12, m.base_mode, m.system_status, 3)


def camera_heartbeat(m: VehicleModel) -> Built:
    # type 30 camera, autopilot 8 invalid, standby
    return wire.HEARTBEAT, (0, 30, 8, 0, 4, 3)


def attitude(m: VehicleModel) -> Built:
    yaw = m.heading if m.heading <= math.pi else m.heading - 2 * math.pi
    return wire.ATTITUDE, (_ms(m), m.roll, m.pitch, yaw, 0.0, 0.0, m.yaw_rate)


def _quat(m: VehicleModel) -> tuple[float, float, float, float]:
    cr, sr = math.cos(m.roll / 2), math.sin(m.roll / 2)
    cp, sp = math.cos(m.pitch / 2), math.sin(m.pitch / 2)
    cy, sy = math.cos(m.heading / 2), math.sin(m.heading / 2)
    return (cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy)


def attitude_quaternion(m: VehicleModel) -> Built:
    q = _quat(m)
    return wire.ATTITUDE_QUATERNION, (_ms(m), *q, 0.0, 0.0, m.yaw_rate, 0.0, 0.0, 0.0, 0.0)


def attitude_target(m: VehicleModel) -> Built:
    q = _quat(m)
    thrust = 0.0 if not m.armed else 0.5 if not m.landed else 0.1
    return wire.ATTITUDE_TARGET, (_ms(m), *q, 0.0, 0.0, m.yaw_rate, thrust, 0)


def global_position_int(m: VehicleModel) -> Built:
    hdg = int(math.degrees(m.heading) * 100) % 36000
    return wire.GLOBAL_POSITION_INT, (
        _ms(m), round(m.lat * 1e7), round(m.lon * 1e7), round(m.alt_amsl * 1000), round(m.alt_rel * 1000),
        round(m.vn * 100), round(m.ve * 100), round(m.vd * 100), hdg,
    )


def _local(m: VehicleModel) -> tuple[float, float, float]:
    n, e = offset_ne(m.home[0], m.home[1], m.lat, m.lon)
    return n, e, -m.alt_rel


def local_position_ned(m: VehicleModel) -> Built:
    n, e, d = _local(m)
    return wire.LOCAL_POSITION_NED, (_ms(m), n, e, d, m.vn, m.ve, m.vd)


def position_target_local_ned(m: VehicleModel) -> Built:
    n, e, d = _local(m)
    return wire.POSITION_TARGET_LOCAL_NED, (_ms(m), n, e, d, m.vn, m.ve, m.vd, 0.0, 0.0, 0.0, m.heading, 0.0,
                                            0, 1)


def servo_output_raw(m: VehicleModel) -> Built:
    pwm = 900 if not m.armed else 1100 if m.landed else 1500
    motors = (0 if m.motor_failed else pwm, pwm, pwm, pwm)
    return wire.SERVO_OUTPUT_RAW, (_us(m) & 0xFFFFFFFF, *motors, 0, 0, 0, 0, 0, *([0] * 8))


def vfr_hud(m: VehicleModel) -> Built:
    throttle = 0 if not m.armed else 15 if m.landed else 50
    return wire.VFR_HUD, (m.airspeed, m.groundspeed, m.alt_amsl, -m.vd, int(math.degrees(m.heading)) % 360,
                          throttle)


def gps_raw_int(m: VehicleModel) -> Built:
    fix, sats, eph = (0, 0, 9999) if m.gps_lost else (3, 16, 70)
    cog = int(math.degrees(math.atan2(m.ve, m.vn)) * 100) % 36000 if m.groundspeed > 0.5 else 0
    return wire.GPS_RAW_INT, (
        _us(m), round(m.lat * 1e7), round(m.lon * 1e7), round(m.alt_amsl * 1000), eph, 100,
        round(m.groundspeed * 100), cog, fix, sats, round(m.alt_amsl * 1000), 500, 800, 200, 0, 0,
    )


def sys_status(m: VehicleModel) -> Built:
    health = _SENSORS
    if m.gps_lost:
        health &= ~_GPS_BIT
    if m.motor_failed:
        health &= ~_MOTOR_BIT
    if not m.prearm_ok[0]:
        health &= ~_PREARM_BIT
    return wire.SYS_STATUS, (
        _SENSORS, _SENSORS, health, 250, round(m.voltage * 1000), round(m.current_a * 100), 0, 0, 0, 0, 0, 0,
        round(m.battery * 100), 0, 0, 0,
    )


def extended_sys_state(m: VehicleModel) -> Built:
    return wire.EXTENDED_SYS_STATE, (0, m.landed_state)


def altitude(m: VehicleModel) -> Built:
    return wire.ALTITUDE, (_us(m), m.alt_amsl, m.alt_amsl, m.alt_rel, m.alt_rel, float("nan"), m.alt_rel)


def mission_current(m: VehicleModel) -> Built:
    n = len(m.items)
    state = m.mission_state if n else MS_NONE
    return wire.MISSION_CURRENT, (
        m.seq if n else 0, n if n else 65535, state, 1 if m.mode == "AUTO.MISSION" else 2, m.store.ids[0],
        m.store.ids[1], m.store.ids[2],
    )


def highres_imu(m: VehicleModel) -> Built:
    return wire.HIGHRES_IMU, (_us(m), 0.0, 0.0, -9.81, 0.0, 0.0, m.yaw_rate, 0.2, 0.0, 0.4, 1013.0, 0.0,
                              m.alt_amsl, 25.0, 0x1FFF, 0)


def timesync(m: VehicleModel) -> Built:
    # a request (tc1 = 0) stamped with the vehicle's clock, as PX4 sends on its API link
    return wire.TIMESYNC, (0, int(m.t * 1e9), 0, 0)


#: name → builder, for SET_MESSAGE_INTERVAL / REQUEST_MESSAGE by id as well.
BUILDERS: dict[str, Callable[[VehicleModel], Built]] = {
    "HEARTBEAT": heartbeat, "ATTITUDE": attitude, "ATTITUDE_QUATERNION": attitude_quaternion,
    "ATTITUDE_TARGET": attitude_target, "GLOBAL_POSITION_INT": global_position_int,
    "LOCAL_POSITION_NED": local_position_ned, "POSITION_TARGET_LOCAL_NED": position_target_local_ned,
    "SERVO_OUTPUT_RAW": servo_output_raw, "VFR_HUD": vfr_hud, "GPS_RAW_INT": gps_raw_int,
    "SYS_STATUS": sys_status, "EXTENDED_SYS_STATE": extended_sys_state, "ALTITUDE": altitude,
    "MISSION_CURRENT": mission_current, "HIGHRES_IMU": highres_imu, "TIMESYNC": timesync,
}
BUILDER_BY_ID = {getattr(wire, name).msgid: name for name in BUILDERS}

# Slow-path messages (pymavlink-encoded) are streamed by name too: BATTERY_STATUS, HOME_POSITION.
GCS_STREAMS: dict[str, float] = {
    "ATTITUDE": 50, "ATTITUDE_QUATERNION": 50, "GLOBAL_POSITION_INT": 50, "LOCAL_POSITION_NED": 50,
    "POSITION_TARGET_LOCAL_NED": 50, "ATTITUDE_TARGET": 50, "SERVO_OUTPUT_RAW": 50, "GPS_RAW_INT": 5,
    "VFR_HUD": 4, "HEARTBEAT": 1, "SYS_STATUS": 1, "EXTENDED_SYS_STATE": 1, "ALTITUDE": 1,
    "MISSION_CURRENT": 1, "BATTERY_STATUS": 0.5, "HOME_POSITION": 0.5,
}
API_STREAMS: dict[str, float] = {
    "ATTITUDE": 100, "HIGHRES_IMU": 50, "ATTITUDE_QUATERNION": 50, "GLOBAL_POSITION_INT": 50,
    "LOCAL_POSITION_NED": 30, "TIMESYNC": 10, "ALTITUDE": 10, "VFR_HUD": 10, "GPS_RAW_INT": 5, "SYS_STATUS": 5,
    "EXTENDED_SYS_STATE": 5, "HEARTBEAT": 1, "MISSION_CURRENT": 1, "BATTERY_STATUS": 0.5, "HOME_POSITION": 0.5,
}
