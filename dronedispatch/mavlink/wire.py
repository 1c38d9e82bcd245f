"""Encoding and decoding MAVLink 2 messages, on top of pymavlink's generated message classes.

pymavlink's own ``pack``/``decode`` spend most of their time in Python-level bookkeeping and, without
the optional ``fastcrc``, a Python CRC loop; on the link's hot path (a mission item per request,
telemetry from hundreds of vehicles) that is most of our cost. Here the X.25 checksum is the C
``binascii.crc_hqx`` on bit-reversed bytes (CRC-16/MCRF4XX is CRC-16/CCITT reflected), and
messages without numeric arrays are packed and unpacked with their class's precompiled struct.
Anything else falls back to pymavlink, and the tests compare both byte for byte.

pymavlink's ``common`` dialect (2.4.x) also predates ``opaque_id`` in MISSION_COUNT/MISSION_ACK,
``mission_id`` in MISSION_CURRENT and the COMMAND_CANCEL message. Extension fields do not change
a message's CRC_EXTRA, so these are read straight from the raw payload here, and COMMAND_CANCEL
is packed by a small message class of our own.
"""

from __future__ import annotations

import hashlib
import struct
from binascii import crc_hqx
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
        mav.MAVLINK_MSG_ID_CAMERA_INFORMATION,
        mav.MAVLINK_MSG_ID_VIDEO_STREAM_INFORMATION,
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


_REV8 = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))
_HEADER = struct.Struct("<BBBBBBBHB")
_SIGN_TAIL = struct.Struct("<BQ")


def x25crc(data: bytes) -> int:
    """CRC-16/MCRF4XX, MAVLink's checksum, computed in C."""
    c = crc_hqx(data.translate(_REV8), 0xFFFF)
    return (_REV8[c & 0xFF] << 8) | _REV8[c >> 8]


#: CRC_EXTRA of every message of the dialect, and of the ones this module adds.
_CRC_EXTRA: dict[int, int] = {
    **{msgid: cls.crc_extra for msgid, cls in mav.mavlink_map.items()},
    MSG_COMMAND_CANCEL: COMMAND_CANCEL_CRC_EXTRA,
}


#: The longest payload each message can have; leeway for extension fields newer than the dialect.
_MAX_PAYLOAD: dict[int, int] = {
    **{msgid: cls.unpacker.size + 16 for msgid, cls in mav.mavlink_map.items()},
    MSG_COMMAND_CANCEL: 4 + 16,
}


def crc_matches(raw: bytes, msgid: int) -> bool | None:
    """Whether a v1/v2 frame's checksum holds (False for one cut short); None when it cannot be
    checked: a message this dialect does not know, or a payload longer than the message can have.

    The frame splitters use it to find their step again after garbage (see frames.Verify)."""
    extra = _CRC_EXTRA.get(msgid)
    if extra is None or raw[1] > _MAX_PAYLOAD[msgid]:
        return None
    end = (10 if raw[0] == 0xFD else 6) + raw[1]
    if len(raw) < end + 2:
        return False
    return x25crc(raw[1:end] + bytes((extra,))) == raw[end] | raw[end + 1] << 8


class _Layout:
    """What fast packing/unpacking needs from one pymavlink message class."""

    __slots__ = ("base", "cls", "crc_byte", "crc_extra", "orders", "size", "strings", "unpacker", "wire_names", "zeros")

    def __init__(self, cls: Any) -> None:
        self.cls = cls
        self.crc_extra: int = cls.crc_extra
        self.unpacker: struct.Struct = cls.unpacker
        self.size = self.unpacker.size
        self.crc_byte = bytes((self.crc_extra,))
        self.zeros = bytes(self.size)  # MAVLink 2 trims trailing zero bytes: what to put back
        self.orders: list[int] = list(cls.orders)
        self.wire_names: list[str] = list(cls.ordered_fieldnames)
        # char[] fields (the only arrays allowed here) travel as NUL-padded bytes
        self.strings = [i for i, n in enumerate(cls.array_lengths) if n]
        # The attributes pymavlink's constructors give every message, for building one without
        # running them (those constructors are most of the cost of a decode).
        self.base: dict[str, Any] = {
            "_payload": None,
            "_crc": None,
            "_fieldnames": cls.fieldnames,
            "_type": cls.msgname,
            "_link_id": None,
            "_instances": None,
            "_instance_field": cls.instance_field,
            "_instance_offset": cls.instance_offset,
        }

    def payload(self, values: list[Any] | tuple[Any, ...]) -> bytes:
        """The packed payload of field values in wire order, trailing zeros trimmed (MAVLink 2)."""
        return self.unpacker.pack(*values).rstrip(b"\0") or b"\0"

    def values(self, payload: bytes) -> tuple[Any, ...]:
        """Field values in wire order from a payload as it travelled: MAVLink 2 trims trailing
        zero bytes (put back here), and a newer sender may append extensions we do not know."""
        n = len(payload)
        if n != self.size:
            payload = payload + self.zeros[n:] if n < self.size else payload[: self.size]
        return self.unpacker.unpack(payload)


def _layouts() -> dict[int, _Layout]:
    out: dict[int, _Layout] = {}
    for msgid, cls in mav.mavlink_map.items():
        if sum(cls.lengths) == len(cls.lengths):  # no numeric arrays
            out[msgid] = _Layout(cls)
    return out


_LAYOUTS = _layouts()


class Prepacked:
    """A message whose payload is packed already: only the frame around it is left to build.

    For messages prepared ahead of the moment they are sent (mission items, while the vehicle
    is still answering the previous one). Reading a field decodes the payload, for tests and logs.
    """

    __slots__ = ("_fields", "layout", "payload")

    def __init__(self, layout: _Layout, payload: bytes) -> None:
        self.layout = layout
        self.payload = payload
        self._fields: dict[str, Any] | None = None

    @classmethod
    def of(cls, msg: Any) -> Prepacked:
        layout = _LAYOUTS[type(msg).id]
        if layout.strings:
            raise ValueError(f"{msg.get_type()}: messages with text fields are not pre-packed")
        return cls(layout, layout.payload([getattr(msg, n) for n in layout.wire_names]))

    def get_type(self) -> str:
        return str(self.layout.cls.msgname)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not a field (and _fields itself while unset: copy, pickle)
            raise AttributeError(name)
        if self._fields is None:
            self._fields = dict(zip(self.layout.wire_names, self.layout.values(self.payload), strict=True))
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict[str, Any]:
        """As pymavlink's ``to_dict``: the type, then the fields in declaration order."""
        return {"mavpackettype": self.get_type(), **{n: getattr(self, n) for n in self.layout.cls.fieldnames}}

    def __repr__(self) -> str:
        return f"Prepacked({self.get_type()}, {self.payload.hex()})"


def pack(encoder: Any, msg: Any) -> bytes:
    """Frame ``msg`` as MAVLink 2 with ``encoder``'s ids, sequence and signing state."""
    cls = type(msg)
    if cls is Prepacked:
        layout: _Layout | None = msg.layout
        payload = msg.payload
    else:
        # type(msg).id, not msg.id: STATUSTEXT has a field named "id"
        layout = _LAYOUTS.get(cls.id) if cls is not CommandCancel else None
        payload = b""
    signing = encoder.signing
    if signing.sign_outgoing:
        # Keep the signing clock near real time so a receiver accepts it as a fresh stream.
        signing.timestamp = max(signing.timestamp, signing_timestamp())
    if layout is None:
        buf: bytes = msg.pack(encoder)
    else:
        if not payload:
            values = [getattr(msg, n) for n in layout.wire_names]
            for i in layout.strings:
                # pymavlink keeps the bytes as given in ``_<name>_raw`` and a decoded str in ``<name>``
                raw = getattr(msg, f"_{layout.wire_names[i]}_raw", None)
                values[i] = raw if raw is not None else str(values[i]).encode("utf-8")
            payload = layout.payload(values)
        msgid = layout.cls.id
        header = _HEADER.pack(
            0xFD,
            len(payload),
            1 if signing.sign_outgoing else 0,
            0,
            encoder.seq,
            encoder.srcSystem,
            encoder.srcComponent,
            msgid & 0xFFFF,
            msgid >> 16,
        )
        body = header + payload
        crc = x25crc(body[1:] + layout.crc_byte)
        buf = body + crc.to_bytes(2, "little")
        if signing.sign_outgoing:
            buf += _SIGN_TAIL.pack(signing.link_id, signing.timestamp)[:7]
            buf += hashlib.sha256(signing.secret_key + buf).digest()[:6]
            signing.timestamp += 1
    encoder.seq = (encoder.seq + 1) & 0xFF
    return buf


def decode(frame: Frame, fallback: Any) -> Any:
    """Decode a frame, checking its CRC; raises MAVError. ``fallback`` is a pymavlink MAVLink."""
    layout = _LAYOUTS.get(frame.msgid)
    raw = frame.raw
    if layout is None or raw[0] != 0xFD:
        return fallback.decode(bytearray(raw))
    plen = raw[1]
    end = 10 + plen
    if len(raw) < end + 2:
        raise MAVError("truncated frame")
    if x25crc(raw[1:end] + layout.crc_byte) != raw[end] | raw[end + 1] << 8:
        raise MAVError(f"invalid MAVLink CRC in msgID {frame.msgid}")
    t = layout.values(raw[10:end])
    if layout.strings:
        v = list(t)
        for i in layout.strings:
            v[i] = v[i].rstrip(b"\0")
        m = layout.cls(*[v[o] for o in layout.orders])
    else:
        # What the class's constructor would build, without running it.
        m = layout.cls.__new__(layout.cls)
        d = layout.base.copy()
        d.update(zip(layout.wire_names, t, strict=True))
        m.__dict__ = d
    m._header = mav.MAVLink_header(frame.msgid, raw[2], raw[3], plen, frame.seq, frame.sysid, frame.compid)
    m._msgbuf = raw
    m._signed = frame.signed
    return m
