"""MAVLink 2 framing for the simulator's outgoing traffic, built for volume.

A hundred simulated vehicles send ~36,000 messages a second. pymavlink's ``message.pack`` computes
the X.25 CRC in a Python loop, which alone would take most of a core, so the high-rate messages go
through :class:`FastMessage`: a precompiled ``struct.Struct`` for the payload and the CRC computed in
C. CRC-16/MCRF4XX is the bit-reflected form of CRC-16/CCITT, so ``binascii.crc_hqx`` over the
bit-reversed bytes, bit-reversed back, gives the same value (checked against pymavlink in the tests).

Rare messages (acks, mission items, parameters) are encoded by pymavlink itself through
:meth:`LinkEncoder.encode`, which shares the link's sequence counter.
"""

from __future__ import annotations

import hashlib
import struct
import time
from binascii import crc_hqx
from collections.abc import Sequence

from pymavlink.dialects.v20 import common as mavlink

_REV8 = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))
_HEADER = struct.Struct("<BBBBBBBHB")
_CRC = struct.Struct("<H")
_SIGNING_EPOCH = 1420070400  # 2015-01-01 00:00:00 UTC
INCOMPAT_SIGNED = 0x01


def signing_timestamp() -> int:
    """MAVLink 2 signing time: 10 µs units since 2015-01-01."""
    return int((time.time() - _SIGNING_EPOCH) * 100_000)


def x25crc(data: bytes) -> int:
    """CRC-16/MCRF4XX (MAVLink's checksum) of ``data``, computed in C."""
    c = crc_hqx(data.translate(_REV8), 0xFFFF)
    return (_REV8[c & 0xFF] << 8) | _REV8[c >> 8]


class FastMessage:
    """Encoder for one message type whose field order is declared, and checked, up front."""

    __slots__ = ("crc_extra", "msgid", "name", "struct")

    def __init__(
        self, cls: type[mavlink.MAVLink_message], fields: Sequence[str], extensions: str = ""
    ) -> None:
        wire_order = list(cls.ordered_fieldnames)
        if list(fields[: len(wire_order)]) != wire_order:
            raise ValueError(f"{cls.msgname}: fields {fields} are not in wire order {wire_order}")
        # ``extensions``: struct codes of extension fields newer than pymavlink's dialect (they
        # follow the known fields in declaration order and do not enter crc_extra).
        self.struct = struct.Struct(cls.unpacker.format + extensions)
        self.msgid: int = cls.id
        self.crc_extra: int = cls.crc_extra
        self.name: str = cls.msgname


# The high-rate messages, fields in wire order (largest type first, as MAVLink sorts them).
HEARTBEAT = FastMessage(
    mavlink.MAVLink_heartbeat_message,
    ("custom_mode", "type", "autopilot", "base_mode", "system_status", "mavlink_version"),
)
ATTITUDE = FastMessage(
    mavlink.MAVLink_attitude_message,
    ("time_boot_ms", "roll", "pitch", "yaw", "rollspeed", "pitchspeed", "yawspeed"),
)
ATTITUDE_QUATERNION = FastMessage(
    mavlink.MAVLink_attitude_quaternion_message,
    ("time_boot_ms", "q1", "q2", "q3", "q4", "rollspeed", "pitchspeed", "yawspeed", "repr_offset_q"),
)
GLOBAL_POSITION_INT = FastMessage(
    mavlink.MAVLink_global_position_int_message,
    ("time_boot_ms", "lat", "lon", "alt", "relative_alt", "vx", "vy", "vz", "hdg"),
)
LOCAL_POSITION_NED = FastMessage(
    mavlink.MAVLink_local_position_ned_message,
    ("time_boot_ms", "x", "y", "z", "vx", "vy", "vz"),
)
POSITION_TARGET_LOCAL_NED = FastMessage(
    mavlink.MAVLink_position_target_local_ned_message,
    (
        "time_boot_ms", "x", "y", "z", "vx", "vy", "vz", "afx", "afy", "afz", "yaw", "yaw_rate",
        "type_mask", "coordinate_frame",
    ),
)
ATTITUDE_TARGET = FastMessage(
    mavlink.MAVLink_attitude_target_message,
    ("time_boot_ms", "q", "body_roll_rate", "body_pitch_rate", "body_yaw_rate", "thrust", "type_mask"),
)
SERVO_OUTPUT_RAW = FastMessage(
    mavlink.MAVLink_servo_output_raw_message,
    (
        "time_usec", "servo1_raw", "servo2_raw", "servo3_raw", "servo4_raw", "servo5_raw", "servo6_raw",
        "servo7_raw", "servo8_raw", "port", "servo9_raw", "servo10_raw", "servo11_raw", "servo12_raw",
        "servo13_raw", "servo14_raw", "servo15_raw", "servo16_raw",
    ),
)
VFR_HUD = FastMessage(
    mavlink.MAVLink_vfr_hud_message,
    ("airspeed", "groundspeed", "alt", "climb", "heading", "throttle"),
)
GPS_RAW_INT = FastMessage(
    mavlink.MAVLink_gps_raw_int_message,
    (
        "time_usec", "lat", "lon", "alt", "eph", "epv", "vel", "cog", "fix_type", "satellites_visible",
        "alt_ellipsoid", "h_acc", "v_acc", "vel_acc", "hdg_acc", "yaw",
    ),
)
SYS_STATUS = FastMessage(
    mavlink.MAVLink_sys_status_message,
    (
        "onboard_control_sensors_present", "onboard_control_sensors_enabled", "onboard_control_sensors_health",
        "load", "voltage_battery", "current_battery", "drop_rate_comm", "errors_comm", "errors_count1",
        "errors_count2", "errors_count3", "errors_count4", "battery_remaining",
        "onboard_control_sensors_present_extended", "onboard_control_sensors_enabled_extended",
        "onboard_control_sensors_health_extended",
    ),
)
EXTENDED_SYS_STATE = FastMessage(mavlink.MAVLink_extended_sys_state_message, ("vtol_state", "landed_state"))
ALTITUDE = FastMessage(
    mavlink.MAVLink_altitude_message,
    (
        "time_usec", "altitude_monotonic", "altitude_amsl", "altitude_local", "altitude_relative",
        "altitude_terrain", "bottom_clearance",
    ),
)
MISSION_CURRENT = FastMessage(
    mavlink.MAVLink_mission_current_message,
    ("seq", "total", "mission_state", "mission_mode", "mission_id", "fence_id", "rally_points_id"),
    extensions="III",
)
# MISSION_ACK and MISSION_COUNT carry opaque_id (uint32 extension) that pymavlink 2.4.50 lacks.
MISSION_ACK = FastMessage(
    mavlink.MAVLink_mission_ack_message,
    ("target_system", "target_component", "type", "mission_type", "opaque_id"),
    extensions="I",
)
MISSION_COUNT = FastMessage(
    mavlink.MAVLink_mission_count_message,
    ("count", "target_system", "target_component", "mission_type", "opaque_id"),
    extensions="I",
)
HIGHRES_IMU = FastMessage(
    mavlink.MAVLink_highres_imu_message,
    (
        "time_usec", "xacc", "yacc", "zacc", "xgyro", "ygyro", "zgyro", "xmag", "ymag", "zmag", "abs_pressure",
        "diff_pressure", "pressure_alt", "temperature", "fields_updated", "id",
    ),
)
TIMESYNC = FastMessage(
    mavlink.MAVLink_timesync_message, ("tc1", "ts1", "target_system", "target_component"), extensions="BB"
)


class LinkEncoder:
    """Frames messages for one link: one sequence counter, MAVLink 2, signed when given a key."""

    __slots__ = ("_mav", "key", "link_id", "seq", "sysid", "timestamp")

    def __init__(self, sysid: int) -> None:
        self.sysid = sysid
        self.seq = 0
        self._mav = mavlink.MAVLink(None, srcSystem=sysid, srcComponent=1)
        self.key: bytes | None = None
        self.link_id = 0
        self.timestamp = 0

    def set_signing(self, key: bytes | None, link_id: int = 0) -> None:
        """Sign every frame with this 32-byte key (None: unsigned)."""
        if key is not None and len(key) != 32:
            raise ValueError("a MAVLink signing key is 32 bytes")
        self.key, self.link_id = key, link_id

    def _next_timestamp(self) -> int:
        # strictly increasing per stream, and near real time so receivers accept a new stream
        self.timestamp = max(self.timestamp + 1, signing_timestamp())
        return self.timestamp

    def fast(self, spec: FastMessage, values: tuple, compid: int = 1) -> bytes:
        """Frame a high-rate message from its field values in wire order."""
        payload = spec.struct.pack(*values).rstrip(b"\x00") or b"\x00"
        signed = self.key is not None
        header = _HEADER.pack(0xFD, len(payload), INCOMPAT_SIGNED if signed else 0, 0, self.seq, self.sysid, compid,
                              spec.msgid & 0xFFFF, spec.msgid >> 16)
        self.seq = (self.seq + 1) & 0xFF
        body = header + payload
        frame = body + _CRC.pack(x25crc(body[1:] + bytes((spec.crc_extra,))))
        if self.key is not None:
            ts = self._next_timestamp()
            tail = bytes((self.link_id,)) + ts.to_bytes(6, "little")
            frame += tail + hashlib.sha256(self.key + frame + tail).digest()[:6]
        return frame

    def encode(self, msg: mavlink.MAVLink_message, compid: int = 1) -> bytes:
        """Frame any pymavlink message (slow path, for low-rate traffic)."""
        mav = self._mav
        mav.seq = self.seq
        mav.srcComponent = compid
        self.seq = (self.seq + 1) & 0xFF
        if self.key is None:
            mav.signing.sign_outgoing = False
            return bytes(msg.pack(mav))
        sg = mav.signing
        sg.secret_key, sg.link_id, sg.sign_outgoing = self.key, self.link_id, True
        sg.timestamp = self._next_timestamp()
        data = bytes(msg.pack(mav))
        self.timestamp = max(self.timestamp, sg.timestamp - 1)
        return data

    @property
    def factory(self) -> mavlink.MAVLink:
        """A pymavlink object used only to build message objects (``*_encode`` methods)."""
        return self._mav
