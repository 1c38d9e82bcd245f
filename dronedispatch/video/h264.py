"""H.264 over RTP (RFC 6184, packetization-mode 1) without decoding (pure logic, no I/O).

``Packetizer`` turns an access unit (Annex B bytes, one picture) into RTP payloads: single NAL unit
packets, FU-A fragments for NAL units larger than the payload budget. ``Depacketizer`` does the
reverse for what arrives from a vehicle: single NAL, STAP-A and FU-A in, whole access units out.
Theory of operation: an access unit ends at the marker bit or when the RTP timestamp changes; a
sequence gap spoils the unit being assembled and every following one until the next IDR picture,
since P-frames that reference a lost picture decode as garbage. SPS/PPS seen in-band are kept and
put in front of an IDR that arrives without them, so any IDR starts a decodable stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

START_CODE = b"\x00\x00\x00\x01"
NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
STAP_A = 24
FU_A = 28
DEFAULT_PAYLOAD_MAX = 1200
VIDEO_CLOCK = 90_000


def split_annexb(buf: bytes) -> Iterator[bytes]:
    """NAL units of an Annex B byte stream (3- or 4-byte start codes), without their start codes."""
    i = buf.find(b"\x00\x00\x01")
    while i != -1:
        start = i + 3
        j = buf.find(b"\x00\x00\x01", start)
        if j == -1:
            nal = buf[start:]
        else:
            nal = buf[start : j - 1] if buf[j - 1] == 0 else buf[start:j]
        if nal:
            yield nal
        i = j


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F


def join_annexb(nals: list[bytes]) -> bytes:
    return b"".join(START_CODE + n for n in nals)


def is_keyframe(access_unit: bytes) -> bool:
    return any(nal_type(n) == NAL_IDR for n in split_annexb(access_unit))


class Packetizer:
    """Access units in, RTP payloads out (one list per unit; the last one carries the marker)."""

    def __init__(self, payload_max: int = DEFAULT_PAYLOAD_MAX) -> None:
        if payload_max < 16:
            raise ValueError("payload budget too small")
        self.payload_max = payload_max

    def payloads(self, access_unit: bytes) -> list[bytes]:
        out: list[bytes] = []
        for nal in split_annexb(access_unit):
            if nal_type(nal) == NAL_AUD:
                continue  # RFC 6184 recommends not sending access unit delimiters
            if len(nal) <= self.payload_max:
                out.append(nal)
            else:
                out.extend(self._fu_a(nal))
        return out

    def _fu_a(self, nal: bytes) -> list[bytes]:
        indicator = (nal[0] & 0xE0) | FU_A
        kind = nal[0] & 0x1F
        body = nal[1:]
        budget = self.payload_max - 2
        # Equal-sized fragments rather than full ones plus a runt.
        count = -(-len(body) // budget)
        size = -(-len(body) // count)
        frags = []
        for k in range(count):
            header = kind | (0x80 if k == 0 else 0) | (0x40 if k == count - 1 else 0)
            frags.append(bytes((indicator, header)) + body[k * size : (k + 1) * size])
        return frags


@dataclass(slots=True)
class AccessUnit:
    data: bytes
    """Annex B bytes of one picture (with SPS/PPS in front of an IDR)."""
    rtp_timestamp: int
    keyframe: bool


@dataclass
class Depacketizer:
    """RTP payloads of one H.264 stream in, complete access units out."""

    sps: bytes | None = None
    pps: bytes | None = None
    lost: int = 0
    """Access units dropped because of a gap or a malformed payload."""
    _nals: list[bytes] = field(default_factory=list)
    _fu: bytearray | None = None
    _timestamp: int | None = None
    _expected_seq: int | None = None
    _damaged: bool = False
    _need_keyframe: bool = True

    def reset(self) -> None:
        """Forget everything but the parameter sets (a new source, or a stall)."""
        self._nals, self._fu, self._timestamp, self._expected_seq = [], None, None, None
        self._damaged, self._need_keyframe = False, True

    def feed(self, payload: bytes, *, sequence: int, timestamp: int, marker: bool) -> list[AccessUnit]:
        out: list[AccessUnit] = []
        gap = False
        if self._expected_seq is not None and sequence != self._expected_seq:
            behind = (self._expected_seq - sequence) & 0xFFFF
            if behind < 0x8000:
                return out  # late or duplicate: its unit has already gone
            gap = True
        self._expected_seq = (sequence + 1) & 0xFFFF
        if self._timestamp is not None and timestamp != self._timestamp and (self._nals or self._fu):
            # Lost packets may have been the end of the previous unit or the start of this one.
            self._damaged = self._damaged or gap
            out.extend(self._finish())
        self._damaged = self._damaged or gap
        self._timestamp = timestamp
        try:
            self._take(payload)
        except IndexError:
            self._damaged = True
        if marker:
            out.extend(self._finish())
        return out

    def _take(self, payload: bytes) -> None:
        kind = payload[0] & 0x1F
        if 1 <= kind <= 23:
            self._fu = None
            self._nals.append(bytes(payload))
        elif kind == STAP_A:
            i = 1
            while i + 2 <= len(payload):
                size = int.from_bytes(payload[i : i + 2], "big")
                nal = payload[i + 2 : i + 2 + size]
                if len(nal) != size or size == 0:
                    raise IndexError("truncated STAP-A")
                self._nals.append(bytes(nal))
                i += 2 + size
        elif kind == FU_A:
            header = payload[1]
            if header & 0x80:
                self._fu = bytearray(((payload[0] & 0xE0) | (header & 0x1F),))
            elif self._fu is None:
                self._damaged = True  # a middle fragment whose start we never saw
                return
            self._fu += payload[2:]
            if header & 0x40:
                self._nals.append(bytes(self._fu))
                self._fu = None
        else:
            self._damaged = True  # STAP-B, MTAP, FU-B: not in packetization-mode 1

    def _finish(self) -> list[AccessUnit]:
        nals, damaged = self._nals, self._damaged or self._fu is not None
        self._nals, self._fu, self._damaged = [], None, False
        if not nals:
            return []
        types = [nal_type(n) for n in nals]
        for n, t in zip(nals, types, strict=True):
            if t == NAL_SPS:
                self.sps = n
            elif t == NAL_PPS:
                self.pps = n
        keyframe = NAL_IDR in types
        if damaged:
            self.lost += 1
            self._need_keyframe = True
            return []
        if self._need_keyframe and not keyframe:
            if any(t in (NAL_SLICE, NAL_IDR) for t in types):
                self.lost += 1
            return []
        if keyframe:
            if self.sps is None or self.pps is None:
                self.lost += 1
                return []
            self._need_keyframe = False
            head = [n for n, present in ((self.sps, NAL_SPS in types), (self.pps, NAL_PPS in types)) if not present]
            nals = head + nals
        assert self._timestamp is not None
        return [AccessUnit(data=join_annexb(nals), rtp_timestamp=self._timestamp, keyframe=keyframe)]
