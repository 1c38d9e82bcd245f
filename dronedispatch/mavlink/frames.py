"""MAVLink framing and signing, below message decoding (pure, no I/O).

Theory of operation: bytes from a transport go into a ``FrameSplitter``, which returns whole
frames (v1 or v2) with their header fields read but the payload not decoded. The link decides
from the header alone whether a frame is worth decoding (most of the ~365 msg/s a PX4 vehicle
streams are attitude and sensor messages nobody here reads), which keeps 200 vehicles within one
core. Garbage between frames is skipped and counted. Signature checks happen on the raw frame
with the key of the vehicle that claims to have sent it.

Signing (MAVLink 2): incompat flag 0x01 and a 13-byte trailer: link_id (1), timestamp (6, 10 µs
units since 2015-01-01), then the first 6 bytes of SHA-256(key + frame up to and including the
timestamp).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import NamedTuple

STX_V1 = 0xFE
STX_V2 = 0xFD
IFLAG_SIGNED = 0x01
SIGNATURE_LEN = 13
#: 2015-01-01T00:00:00Z as a Unix time.
SIGNING_EPOCH = 1420070400


class Frame(NamedTuple):  # a tuple: cheap to build for every frame on the wire
    raw: bytes
    msgid: int
    sysid: int
    compid: int
    seq: int
    signed: bool


#: Whether a frame's checksum holds: True/False (False when cut short), or None when it cannot be checked
#: (a message not known here, so no CRC_EXTRA, or a payload longer than the message can have).
Verify = Callable[[bytes, int], "bool | None"]


def _false_start(buf: bytes | bytearray, i: int, msgid: int, verify: Verify | None, synced: bool, whole: bool) -> bool:
    """Whether a frame cut short is garbage now, rather than something to wait for: in a datagram
    (``whole``: nothing more will come), or out of step with a header that could not be checked when
    whole (it would hold back the frames its claimed length covers)."""
    if verify is None:
        return False
    return whole or (not synced and verify(bytes(buf[i:]), msgid) is None)


def _scan(
    buf: bytes | bytearray, verify: Verify | None = None, synced: bool = True, whole: bool = False
) -> tuple[list[Frame], int, int, bool]:
    """The whole frames at the start of ``buf``: (frames, bytes used, how many of those were
    garbage between frames, still in step). Stops before a frame that is cut short.

    With ``verify``, a start byte inside garbage cannot pass for a frame and swallow the real
    frames after it: out of step (after garbage, or at the start) a frame is taken only when its
    checksum holds, and a known message with a bad checksum never is; a false start is skipped
    one byte at a time until a frame checks out (resynchronisation)."""
    frames: list[Frame] = []
    n = len(buf)
    i = garbage = 0
    while i < n:
        stx = buf[i]
        if stx == STX_V2:
            if n - i < 10:
                break
            signed = bool(buf[i + 2] & IFLAG_SIGNED)
            total = 12 + buf[i + 1] + (SIGNATURE_LEN if signed else 0)
            msgid = buf[i + 7] | buf[i + 8] << 8 | buf[i + 9] << 16
            if n - i < total:
                if _false_start(buf, i, msgid, verify, synced, whole):
                    i, garbage = i + 1, garbage + 1
                    continue
                break
            # bytes(): a copy out of a stream's buffer; a datagram's own bytes are taken as they are
            frame = Frame(bytes(buf[i : i + total]), msgid, buf[i + 5], buf[i + 6], buf[i + 4], signed)
        elif stx == STX_V1:
            if n - i < 6:
                break
            total = 8 + buf[i + 1]
            if n - i < total:
                if _false_start(buf, i, buf[i + 5], verify, synced, whole):
                    i, garbage = i + 1, garbage + 1
                    continue
                break
            frame = Frame(bytes(buf[i : i + total]), buf[i + 5], buf[i + 3], buf[i + 4], buf[i + 2], False)
        else:
            start = i
            while i < n and buf[i] not in (STX_V1, STX_V2):
                i += 1
            garbage += i - start
            synced = False
            continue
        if verify is not None:
            ok = verify(frame.raw, frame.msgid)
            if ok is False or (ok is None and not synced):
                i += 1  # a false start: its first byte is garbage, look again from the next
                garbage += 1
                synced = False
                continue
            synced = synced or bool(ok)
        frames.append(frame)
        i += total
    return frames, i, garbage, synced


class FrameSplitter:
    """Cuts a byte stream into MAVLink frames, keeping a frame cut short for the next bytes.

    ``verify`` (a checksum check) lets the splitter find its step again after garbage; without
    it frames are cut by their headers alone. It costs a checksum per frame (about 2 µs), which a
    stream (a serial radio, a TCP link: a few vehicles) can afford; datagrams, which carry the
    many vehicles, are checked only when garbage is found in them (:func:`split_datagram`)."""

    def __init__(self, verify: Verify | None = None) -> None:
        self._buf = bytearray()
        self._verify = verify
        self._synced = False
        self.garbage_bytes = 0

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf
        buf += data
        frames, used, garbage, self._synced = _scan(buf, self._verify, self._synced)
        self.garbage_bytes += garbage
        del buf[:used]
        return frames


def split_datagram(data: bytes, verify: Verify | None = None) -> tuple[list[Frame], int]:
    """Frames in one datagram and the number of bytes outside them (a frame never spans datagrams).

    PX4 fills a datagram with whatever its streams produced in one pass (several frames) and
    sends a reply on its own; both are read straight from ``data``, without a buffer. Only a
    datagram with garbage in it is scanned again with ``verify`` (the clean ones cost nothing more).
    """
    n = len(data)
    if n >= 12 and data[0] == STX_V2:  # a reply on its own: one frame, nothing to scan for
        signed = bool(data[2] & IFLAG_SIGNED)
        if n == 12 + data[1] + (SIGNATURE_LEN if signed else 0):
            return [Frame(data, data[7] | data[8] << 8 | data[9] << 16, data[5], data[6], data[4], signed)], 0
    frames, used, garbage, _ = _scan(data)
    if verify is not None and (garbage or used < n):
        frames, used, garbage, _ = _scan(data, verify, whole=True)
    return frames, garbage + len(data) - used


def signing_timestamp(unix_time: float | None = None) -> int:
    t = time.time() if unix_time is None else unix_time
    return int((t - SIGNING_EPOCH) * 100_000)


def signature_ok(raw: bytes, key: bytes) -> bool:
    """True when ``raw`` is a signed v2 frame whose signature matches ``key``."""
    if len(raw) < 12 + SIGNATURE_LEN or raw[0] != STX_V2 or not raw[2] & IFLAG_SIGNED:
        return False
    digest = hashlib.sha256(key + raw[:-6]).digest()[:6]
    return digest == raw[-6:]


def frame_timestamp(raw: bytes) -> int:
    """The 48-bit signing timestamp of a signed frame."""
    return int.from_bytes(raw[-12:-6], "little")


def frame_link_id(raw: bytes) -> int:
    return raw[-13]


class SignatureGate:
    """Accepts frames from one vehicle only when signed with its key and not replayed.

    Timestamps must increase per (link_id, compid) stream; a new stream may start at most one
    minute in the past (the MAVLink signing rule).
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("MAVLink signing keys are 32 bytes")
        self.key = key
        self._streams: dict[tuple[int, int], int] = {}

    def check(self, frame: Frame, now_unix: float | None = None) -> bool:
        if not frame.signed or not signature_ok(frame.raw, self.key):
            return False
        ts = frame_timestamp(frame.raw)
        stream = (frame_link_id(frame.raw), frame.compid)
        last = self._streams.get(stream)
        if last is None:
            if ts + 6_000_000 < signing_timestamp(now_unix):
                return False
        elif ts <= last:
            return False
        self._streams[stream] = ts
        return True
