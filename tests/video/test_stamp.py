"""The pixel timestamp survives drawing, H.264 compression and decoding; damage is detected."""

from __future__ import annotations

import time
from fractions import Fraction

import av
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dronedispatch.video import formats


@given(st.integers(0, (1 << 48) - 1), st.integers(0, 0xFFFF))
def test_bits_round_trip(time_us: int, counter: int) -> None:
    s = formats.Stamp(time_us, counter)
    assert formats.stamp_from_bits(formats.stamp_to_bits(s)) == s


@given(st.integers(0, (1 << 48) - 1), st.integers(0, 0xFFFF), st.integers(0, formats.STAMP_BITS - 1))
def test_a_flipped_bit_is_rejected(time_us: int, counter: int, flip: int) -> None:
    bits = formats.stamp_to_bits(formats.Stamp(time_us, counter))
    bits[flip] ^= 1
    assert formats.stamp_from_bits(bits) is None


def test_unwrap_restores_the_high_bits_near_now() -> None:
    now = time.time_ns() // 1000
    for sent in (now - 150_000, now, now + 3_000):
        assert formats.unwrap_time_us(sent & ((1 << 48) - 1), now) == sent
    # Across a wrap of the 48-bit counter.
    edge = (7 << 48) + 5
    assert formats.unwrap_time_us((edge - 10) & ((1 << 48) - 1), edge) == edge - 10


def test_picture_too_small_is_an_error_and_reads_as_none() -> None:
    with pytest.raises(ValueError):
        formats.stamp_geometry(100, 40)
    assert formats.read_stamp(np.zeros((40, 100), np.uint8)) is None


@pytest.mark.parametrize(("width", "height"), [(320, 240), (1280, 720)])
def test_stamp_survives_h264_at_a_low_bitrate(width: int, height: int) -> None:
    rng = np.random.default_rng(1)
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base, enc.framerate = Fraction(1, 30), Fraction(30, 1)
    enc.bit_rate = width * height * 2  # what SimCamera spends: ~0.07 bit per pixel per frame
    enc.options = {"preset": "ultrafast", "tune": "zerolatency"}
    dec = av.CodecContext.create("h264", "r")
    sent = [formats.Stamp(1_700_000_000_000_000 + k * 33_333, k) for k in range(20)]
    read = []
    for k, s in enumerate(sent):
        img = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)  # noise: the worst case for an encoder
        formats.draw_stamp(img, s)
        frame = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
        frame.pts = k
        for packet in enc.encode(frame):
            for out in dec.decode(packet):
                read.append(formats.read_stamp(out.to_ndarray(format="gray")))
    for packet in enc.encode(None):
        for out in dec.decode(packet):
            read.append(formats.read_stamp(out.to_ndarray(format="gray")))
    # Starved of bits the encoder may repeat a stale picture, but never invents a stamp.
    wrapped = {formats.Stamp(s.time_us & ((1 << 48) - 1), s.counter) for s in sent}
    assert all(r in wrapped for r in read if r is not None)
    assert len({r for r in read if r is not None}) >= 0.9 * len(sent)
