"""Machine-readable timestamps carried in a video frame's pixels (pure logic, no I/O).

A stamp is 72 bits — the send time in microseconds (low 48 bits), a 16-bit frame counter and a
CRC-8 over both — drawn as three rows of 24 black/white square blocks at the top-left corner of
the picture. Blocks are at least 8 px wide and sit on a black band, so they survive H.264
compression at any sane bitrate; the reader samples the centre of each block in the luma plane
and rejects a read whose CRC does not match. The 48-bit time wraps every ~8.9 years, so the
reader restores the high bits from its own clock (``unwrap_time_us``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

TIME_BITS = 48
COUNTER_BITS = 16
CRC_BITS = 8
BITS = TIME_BITS + COUNTER_BITS + CRC_BITS
ROW_BITS = 24
ROWS = BITS // ROW_BITS
_TIME_MASK = (1 << TIME_BITS) - 1
_COUNTER_MASK = (1 << COUNTER_BITS) - 1


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
        return ROW_BITS * self.block

    @property
    def height(self) -> int:
        return ROWS * self.block


def geometry(width: int, height: int) -> StampGeometry:
    """Where the blocks go in a picture of this size (multiples of 4 px, at least 8 px)."""
    block = max(8, (width // 32) // 4 * 4)
    if (ROW_BITS + 2) * block > width or (ROWS + 2) * block > height:
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


def to_bits(stamp: Stamp) -> list[int]:
    payload = ((stamp.time_us & _TIME_MASK) << COUNTER_BITS) | (stamp.counter & _COUNTER_MASK)
    word = (payload << CRC_BITS) | crc8(payload.to_bytes(8, "big"))
    return [(word >> (BITS - 1 - i)) & 1 for i in range(BITS)]


def from_bits(bits: list[int]) -> Stamp | None:
    """The stamp these bits carry, or None when the CRC disagrees."""
    if len(bits) != BITS:
        raise ValueError(f"expected {BITS} bits, got {len(bits)}")
    word = 0
    for bit in bits:
        word = (word << 1) | (1 if bit else 0)
    payload = word >> CRC_BITS
    if crc8(payload.to_bytes(8, "big")) != word & 0xFF:
        return None
    return Stamp(time_us=payload >> COUNTER_BITS, counter=payload & _COUNTER_MASK)


def draw(image: NDArray[np.uint8], stamp: Stamp) -> None:
    """Draw the stamp into an H×W or H×W×C 8-bit image, in place."""
    g = geometry(image.shape[1], image.shape[0])
    b = g.block
    # A black band one block wide around the blocks keeps the encoder's edges away from them.
    image[g.y0 - b // 2 : g.y0 + g.height + b // 2, g.x0 - b // 2 : g.x0 + g.width + b // 2] = 0
    for i, bit in enumerate(to_bits(stamp)):
        if bit:
            row, col = divmod(i, ROW_BITS)
            y, x = g.y0 + row * b, g.x0 + col * b
            image[y : y + b, x : x + b] = 255


def read(luma: NDArray[Any]) -> Stamp | None:
    """Read a stamp from the luma (Y) plane of a decoded picture; None when absent or damaged."""
    try:
        g = geometry(luma.shape[1], luma.shape[0])
    except ValueError:
        return None
    b, q = g.block, g.block // 4
    region = luma[g.y0 : g.y0 + g.height, g.x0 : g.x0 + g.width].astype(np.int32)
    # Mean of the inner half of each block: robust to ringing at the block edges.
    cells = region.reshape(ROWS, b, ROW_BITS, b)[:, q : b - q, :, q : b - q].mean(axis=(1, 3))
    bits = (cells.reshape(-1) > 128).astype(int).tolist()
    return from_bits(bits)


def unwrap_time_us(time48: int, now_us: int) -> int:
    """The full microsecond time whose low 48 bits are ``time48`` and which lies nearest ``now_us``."""
    period = 1 << TIME_BITS
    candidate = (now_us & ~_TIME_MASK) | (time48 & _TIME_MASK)
    if candidate - now_us > period // 2:
        candidate -= period
    elif now_us - candidate > period // 2:
        candidate += period
    return candidate
