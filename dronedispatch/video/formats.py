"""Pure formats of the video path (no I/O): stream URIs, pixel timestamps and SDP candidates.

Stream URIs. PX4 and the simulator announce ``udp://127.0.0.1:5600`` in VIDEO_STREAM_INFORMATION
(RTP/H.264 pushed to the ground station, which listens) or an ``rtsp://`` URL (the ground station
pulls). A UDP URI names the port the receiver binds; a wildcard or empty host is narrowed to
loopback because the service binds nothing else unless configured.

Pixel timestamps. A stamp is 72 bits — the send time in microseconds (low 48 bits), a 16-bit frame
counter and a CRC-8 over both — drawn as three rows of 24 black/white square blocks at the
top-left corner of the picture. Blocks are at least 8 px wide and sit on a black band, so they
survive H.264 compression; the reader samples the centre of each block in the luma plane and
rejects a read whose CRC does not match. The 48-bit time wraps every ~8.9 years, so the reader
restores the high bits from its own clock (``unwrap_time_us``).

SDP candidates. The relay only talks ICE with addresses it is configured for (``Settings.ice_hosts``,
loopback by default). A browser offers host candidates on all its interfaces, or ``<uuid>.local``
mDNS names that aioice would resolve with multicast DNS on the LAN; ``filter_candidates`` drops
every remote candidate outside the allowed set before ``setRemoteDescription``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from numpy.typing import NDArray

# --- stream URIs ----------------------------------------------------------------------------------


class VideoStreamType(IntEnum):
    """MAV_VIDEO_STREAM_TYPE."""

    RTSP = 0
    RTPUDP = 1
    TCP_MPEG = 2
    MPEG_TS = 3


@dataclass(frozen=True, slots=True)
class StreamSource:
    kind: str
    """'rtp-udp' (we listen for RTP/H.264) or 'pull' (PyAV opens the URL: rtsp://, files …)."""
    uri: str
    host: str = "127.0.0.1"
    port: int = 0


_PULL_SCHEMES = {"rtsp", "rtsps", "rtmp", "http", "https", "file", "srt"}


def parse_stream_uri(uri: str, stream_type: int | None = None, *, listen_host: str = "127.0.0.1") -> StreamSource:
    """Turn a VIDEO_STREAM_INFORMATION uri (and its type, when known) into a source to open.

    Raises ValueError with the reason when the URI cannot be used.
    """
    text = uri.strip().rstrip("\x00")
    if not text:
        raise ValueError("empty video stream URI")
    if "://" not in text:
        # Some autopilots send a bare port ("5600") for RTP over UDP.
        if text.isdigit() and (stream_type in (None, VideoStreamType.RTPUDP)):
            text = f"udp://{listen_host}:{text}"
        elif text.startswith("/"):
            return StreamSource(kind="pull", uri=text)
        else:
            raise ValueError(f"video stream URI without a scheme: {uri!r}")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "udp":
        if stream_type not in (None, VideoStreamType.RTPUDP):
            raise ValueError(f"udp:// URI with stream type {stream_type}, only RTP/UDP is supported")
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"bad port in video stream URI {uri!r}") from exc
        if port is None or not 0 < port < 65536:
            raise ValueError(f"video stream URI {uri!r} names no port")
        host = (parts.hostname or "").strip("@")
        if host in ("", "0.0.0.0", "::", "*"):
            host = listen_host
        return StreamSource(kind="rtp-udp", uri=text, host=host, port=port)
    if scheme in _PULL_SCHEMES:
        if scheme != "file" and not parts.hostname:
            raise ValueError(f"video stream URI {uri!r} names no host")
        return StreamSource(kind="pull", uri=text[len("file://") :] if scheme == "file" else text)
    raise ValueError(f"unsupported video stream URI scheme {scheme!r}")


def simulator_uri(instance: int, host: str = "127.0.0.1", base_port: int = 5600) -> str:
    """The URI the simulator (and PX4 SITL) announce for instance i: RTP to 5600+i."""
    return f"udp://{host}:{base_port + instance}"


# --- pixel timestamps -----------------------------------------------------------------------------

STAMP_TIME_BITS = 48
STAMP_COUNTER_BITS = 16
STAMP_CRC_BITS = 8
STAMP_BITS = STAMP_TIME_BITS + STAMP_COUNTER_BITS + STAMP_CRC_BITS
STAMP_ROW_BITS = 24
STAMP_ROWS = STAMP_BITS // STAMP_ROW_BITS
_TIME_MASK = (1 << STAMP_TIME_BITS) - 1
_COUNTER_MASK = (1 << STAMP_COUNTER_BITS) - 1


@dataclass(frozen=True, slots=True)
class Stamp:
    time_us: int
    """Send time (wall clock, microseconds since the epoch; only the low 48 bits travel)."""
    counter: int
    """Frame counter modulo 65536."""


@dataclass(frozen=True, slots=True)
class StampGeometry:
    block: int
    x0: int
    y0: int

    @property
    def width(self) -> int:
        return STAMP_ROW_BITS * self.block

    @property
    def height(self) -> int:
        return STAMP_ROWS * self.block


def stamp_geometry(width: int, height: int) -> StampGeometry:
    """Where the blocks go in a picture of this size (multiples of 4 px, at least 8 px)."""
    block = max(8, (width // 32) // 4 * 4)
    if (STAMP_ROW_BITS + 2) * block > width or (STAMP_ROWS + 2) * block > height:
        raise ValueError(f"picture {width}x{height} too small for a pixel timestamp")
    return StampGeometry(block=block, x0=block, y0=block)


def crc8(data: bytes) -> int:
    """CRC-8 (polynomial 0x07, as in ATM HEC without the final XOR)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def stamp_to_bits(stamp: Stamp) -> list[int]:
    payload = ((stamp.time_us & _TIME_MASK) << STAMP_COUNTER_BITS) | (stamp.counter & _COUNTER_MASK)
    word = (payload << STAMP_CRC_BITS) | crc8(payload.to_bytes(8, "big"))
    return [(word >> (STAMP_BITS - 1 - i)) & 1 for i in range(STAMP_BITS)]


def stamp_from_bits(bits: list[int]) -> Stamp | None:
    """The stamp these bits carry, or None when the CRC disagrees."""
    if len(bits) != STAMP_BITS:
        raise ValueError(f"expected {STAMP_BITS} bits, got {len(bits)}")
    word = 0
    for bit in bits:
        word = (word << 1) | (1 if bit else 0)
    payload = word >> STAMP_CRC_BITS
    if crc8(payload.to_bytes(8, "big")) != word & 0xFF:
        return None
    return Stamp(time_us=payload >> STAMP_COUNTER_BITS, counter=payload & _COUNTER_MASK)


def draw_stamp(image: NDArray[np.uint8], stamp: Stamp) -> None:
    """Draw the stamp into an H×W or H×W×C 8-bit image, in place."""
    g = stamp_geometry(image.shape[1], image.shape[0])
    b = g.block
    # A black band one block wide around the blocks keeps the encoder's edges away from them.
    image[g.y0 - b // 2 : g.y0 + g.height + b // 2, g.x0 - b // 2 : g.x0 + g.width + b // 2] = 0
    for i, bit in enumerate(stamp_to_bits(stamp)):
        if bit:
            row, col = divmod(i, STAMP_ROW_BITS)
            y, x = g.y0 + row * b, g.x0 + col * b
            image[y : y + b, x : x + b] = 255


def read_stamp(luma: NDArray[Any]) -> Stamp | None:
    """Read a stamp from the luma (Y) plane of a decoded picture; None when absent or damaged."""
    try:
        g = stamp_geometry(luma.shape[1], luma.shape[0])
    except ValueError:
        return None
    b, q = g.block, g.block // 4
    region = luma[g.y0 : g.y0 + g.height, g.x0 : g.x0 + g.width].astype(np.int32)
    # Mean of the inner half of each block: robust to ringing at the block edges.
    cells = region.reshape(STAMP_ROWS, b, STAMP_ROW_BITS, b)[:, q : b - q, :, q : b - q].mean(axis=(1, 3))
    bits = (cells.reshape(-1) > 128).astype(int).tolist()
    return stamp_from_bits(bits)


def unwrap_time_us(time48: int, now_us: int) -> int:
    """The full microsecond time whose low 48 bits are ``time48`` and which lies nearest ``now_us``."""
    period = 1 << STAMP_TIME_BITS
    candidate = (now_us & ~_TIME_MASK) | (time48 & _TIME_MASK)
    if candidate - now_us > period // 2:
        candidate -= period
    elif now_us - candidate > period // 2:
        candidate += period
    return candidate


# --- SDP -----------------------------------------------------------------------------------------


class OfferError(ValueError):
    """The SDP offer cannot be answered (the reason is safe to show to the client)."""


def candidate_address(line: str) -> str | None:
    """The connection address of an ``a=candidate:`` line (field 5), or None if malformed."""
    fields = line.split()
    return fields[4] if len(fields) >= 8 else None


def filter_candidates(sdp: str, allowed_hosts: Iterable[str]) -> tuple[str, int]:
    """Remove remote candidates whose address is not in ``allowed_hosts``; return (sdp, removed)."""
    allowed = {_normal(h) for h in allowed_hosts}
    out, removed = [], 0
    newline = "\r\n" if "\r\n" in sdp else "\n"
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            addr = candidate_address(line)
            if addr is None or _normal(addr) not in allowed:
                removed += 1
                continue
        out.append(line)
    return newline.join(out) + newline, removed


def check_video_offer(sdp: str) -> None:
    """Raise OfferError unless the offer receives video and can take H.264 packetization-mode 1."""
    if not sdp.startswith("v=0"):
        raise OfferError("not an SDP description")
    if "m=video" not in sdp:
        raise OfferError("the offer has no video section")
    rtpmaps = {
        line.split()[0].split(":")[1]: line.split()[1].upper()
        for line in sdp.splitlines()
        if line.startswith("a=rtpmap:") and len(line.split()) >= 2
    }
    h264 = {pt for pt, enc in rtpmaps.items() if enc.startswith("H264/")}
    if not h264:
        raise OfferError("the offer does not accept H.264 video")
    for line in sdp.splitlines():
        if line.startswith("a=fmtp:"):
            pt, _, params = line[len("a=fmtp:") :].partition(" ")
            if pt in h264 and "packetization-mode=1" in params.replace(" ", ""):
                return
    raise OfferError("the offer does not accept H.264 with packetization-mode=1")


def _normal(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return host.lower()
