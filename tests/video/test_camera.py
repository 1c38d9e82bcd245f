"""The simulated camera: what it draws and what it puts on the wire."""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct

import numpy as np
import pytest

from dronedispatch.sim.camera import CameraPose, GroundRenderer, SimCamera
from dronedispatch.video.h264 import NAL_SPS, Depacketizer, nal_type, split_annexb

from .conftest import still_pose


def red_pixels(img: np.ndarray) -> int:
    b, g, r = img[..., 0].astype(int), img[..., 1].astype(int), img[..., 2].astype(int)
    return int(np.count_nonzero((r > 180) & (g < 80) & (b < 80)))


def test_the_incident_marker_is_drawn_and_shrinks_with_height() -> None:
    r = GroundRenderer(320, 240)
    below = (37.3918, 126.6393)
    low = red_pixels(r.render(CameraPose(*below, 40.0, 0.0, -90.0, 0.0, below), 0).copy())
    high = red_pixels(r.render(CameraPose(*below, 120.0, 0.0, -90.0, 0.0, below), 0).copy())
    none = red_pixels(r.render(CameraPose(*below, 40.0, 0.0, -90.0, 0.0, None), 0).copy())
    assert low > high > 0 and none == 0


def test_the_view_follows_the_heading() -> None:
    r = GroundRenderer(320, 240)
    a = r.render(CameraPose(37.3918, 126.6393, 60.0, 10.0, -45.0, 0.0, None), 0).copy()
    b = r.render(CameraPose(37.3918, 126.6393, 60.0, 55.0, -45.0, 0.0, None), 0).copy()
    assert np.count_nonzero(a != b) > 0.01 * a.size


def test_odd_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="even"):
        SimCamera(0, still_pose, port=5600, width=321, height=240)


async def test_rtp_h264_on_the_wire_is_browser_friendly() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    poses = 0

    def pose() -> CameraPose:
        nonlocal poses
        poses += 1
        return still_pose()

    cam = SimCamera(3, pose, port=sock.getsockname()[1], width=320, height=240, fps=30)
    assert not cam.streaming
    await cam.start()
    assert cam.streaming
    loop = asyncio.get_running_loop()
    depack, units, headers = Depacketizer(), [], []
    try:
        async with asyncio.timeout(30):
            while len(units) < 40:
                data = await loop.sock_recv(sock, 65536)
                first, second, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
                headers.append((first, second & 0x7F, seq, ssrc))
                units += depack.feed(data[12:], sequence=seq, timestamp=ts, marker=bool(second & 0x80))
    finally:
        await cam.stop()
        sock.close()
    assert not cam.streaming
    assert {(h[0], h[1]) for h in headers} == {(0x80, 96)}  # RTP v2, no padding/extension, PT 96
    assert len({h[3] for h in headers}) == 1
    seqs = [h[2] for h in headers]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    assert depack.lost == 0
    keyframes = [k for k, u in enumerate(units) if u.keyframe]
    assert keyframes[:2] == [0, 30]  # an IDR every second, the first one at once
    sps = next(n for n in split_annexb(units[0].data) if nal_type(n) == NAL_SPS)
    assert sps[1] == 66 and sps[2] & 0x40  # profile_idc baseline with constraint_set1: constrained baseline
    stamps = [u.rtp_timestamp for u in units]
    assert all(0 < (b - a) % (1 << 32) < 90_000 for a, b in itertools.pairwise(stamps))
    assert poses >= 40 and cam.frames_sent >= 40


async def test_a_failing_pose_ends_streaming_visibly() -> None:
    def broken() -> CameraPose:
        raise RuntimeError("no vehicle state")

    cam = SimCamera(0, broken, port=9, width=320, height=240)
    await cam.start()
    task = cam._task
    assert task is not None
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(task, 10)
    assert not cam.streaming
    await cam.stop()  # still safe
