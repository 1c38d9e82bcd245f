"""Message classes and the few MAVLink fields pymavlink's generated dialect lacks.

pymavlink's ``common`` dialect (2.4.x) predates ``opaque_id`` in MISSION_COUNT/MISSION_ACK,
``mission_id`` in MISSION_CURRENT and the COMMAND_CANCEL message. Extension fields do not change
a message's CRC_EXTRA, so these are read straight from the raw payload here, and COMMAND_CANCEL
is packed by a small message class of our own.
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar

from pymavlink.dialects.v20 import common as mav

from dronedispatch.mavlink.frames import Frame, signing_timestamp

MAVLink = mav.MAVLink
MAVError = mav.MAVError
Message = mav.MAVLink_message

MSG_HEARTBEAT = mav.MAVLINK_MSG_ID_HEARTBEAT
MSG_MISSION_CURRENT = mav.MAVLINK_MSG_ID_MISSION_CURRENT
MSG_MISSION_COUNT = mav.MAVLINK_MSG_ID_MISSION_COUNT
MSG_MISSION_ACK = mav.MAVLINK_MSG_ID_MISSION_ACK
MSG_GLOBAL_POSITION_INT = mav.MAVLINK_MSG_ID_GLOBAL_POSITION_INT
MSG_COMMAND_CANCEL = 80
COMMAND_CANCEL_CRC_EXTRA = 14

#: Messages the link decodes; every other frame is only counted (sequence, signature).
INTERESTING = frozenset(
    {
        mav.MAVLINK_MSG_ID_HEARTBEAT,
        mav.MAVLINK_MSG_ID_SYS_STATUS,
        mav.MAVLINK_MSG_ID_GPS_RAW_INT,
        mav.MAVLINK_MSG_ID_GLOBAL_POSITION_INT,
        mav.MAVLINK_MSG_ID_VFR_HUD,
        mav.MAVLINK_MSG_ID_EXTENDED_SYS_STATE,
        mav.MAVLINK_MSG_ID_HOME_POSITION,
        mav.MAVLINK_MSG_ID_BATTERY_STATUS,
        mav.MAVLINK_MSG_ID_STATUSTEXT,
        mav.MAVLINK_MSG_ID_TIMESYNC,
        mav.MAVLINK_MSG_ID_COMMAND_ACK,
        mav.MAVLINK_MSG_ID_MISSION_CURRENT,
        mav.MAVLINK_MSG_ID_MISSION_ITEM_REACHED,
        mav.MAVLINK_MSG_ID_MISSION_REQUEST,
        mav.MAVLINK_MSG_ID_MISSION_REQUEST_INT,
        mav.MAVLINK_MSG_ID_MISSION_COUNT,
        mav.MAVLINK_MSG_ID_MISSION_ITEM_INT,
        mav.MAVLINK_MSG_ID_MISSION_ITEM,
        mav.MAVLINK_MSG_ID_MISSION_ACK,
        mav.MAVLINK_MSG_ID_PARAM_VALUE,
        mav.MAVLINK_MSG_ID_AUTOPILOT_VERSION,
    }
)


def payload_of(raw: bytes) -> bytes:
    if raw[0] == 0xFD:
        return raw[10 : 10 + raw[1]]
    return raw[6 : 6 + raw[1]]


def _ext(payload: bytes, fmt: str, offset: int) -> int:
    size = struct.calcsize(fmt)
    chunk = payload[offset : offset + size]
    # MAVLink 2 trims trailing zero bytes of a payload; missing bytes are zeros.
    chunk = chunk + bytes(size - len(chunk))
    return int(struct.unpack(fmt, chunk)[0])


def add_extensions(frame: Frame, msg: Any) -> None:
    """Attach the extension fields pymavlink did not decode (0 when absent)."""
    mid = frame.msgid
    if mid == MSG_MISSION_ACK:
        msg.opaque_id = _ext(payload_of(frame.raw), "<I", 4)
    elif mid == MSG_MISSION_COUNT:
        msg.opaque_id = _ext(payload_of(frame.raw), "<I", 5)
    elif mid == MSG_MISSION_CURRENT:
        p = payload_of(frame.raw)
        msg.mission_id = _ext(p, "<I", 6)
        msg.fence_id = _ext(p, "<I", 10)
        msg.rally_points_id = _ext(p, "<I", 14)


class CommandCancel(mav.MAVLink_message):
    """COMMAND_CANCEL (80): stop a long-running command."""

    id = MSG_COMMAND_CANCEL
    msgname = "COMMAND_CANCEL"
    fieldnames: ClassVar[list[str]] = ["target_system", "target_component", "command"]

    def __init__(self, target_system: int, target_component: int, command: int) -> None:
        super().__init__(MSG_COMMAND_CANCEL, "COMMAND_CANCEL")
        self._fieldnames = self.fieldnames
        self.target_system = target_system
        self.target_component = target_component
        self.command = command

    def pack(self, mav_: Any, force_mavlink1: bool = False) -> bytes:
        payload = struct.pack("<HBB", self.command, self.target_system, self.target_component)
        return self._pack(mav_, COMMAND_CANCEL_CRC_EXTRA, payload, force_mavlink1=force_mavlink1)


def new_encoder(source_system: int, source_component: int, key: bytes | None = None) -> Any:
    """A pymavlink MAVLink object used only to pack (never reads or writes a file)."""
    enc = MAVLink(None, srcSystem=source_system, srcComponent=source_component)
    if key is not None:
        enc.signing.secret_key = key
        enc.signing.sign_outgoing = True
        enc.signing.link_id = 0
        enc.signing.timestamp = signing_timestamp()
    return enc


def pack(encoder: Any, msg: Any) -> bytes:
    if encoder.signing.sign_outgoing:
        # Keep the signing clock near real time so a receiver accepts it as a fresh stream.
        encoder.signing.timestamp = max(encoder.signing.timestamp, signing_timestamp())
    buf: bytes = msg.pack(encoder)
    encoder.seq = (encoder.seq + 1) & 0xFF
    return buf
