"""Shared helpers for the video tests: a simulated camera on a free port and an aiortc viewer."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from dronedispatch.sim.camera import CameraPose, SimCamera
from dronedispatch.video import formats
from dronedispatch.video.relay import VideoHub, rtc_configuration

WIDTH, HEIGHT, FPS = 320, 240, 30


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def still_pose() -> CameraPose:
    return CameraPose(37.3918, 126.6393, 60.0, 45.0, -45.0, time.time(), (37.3922, 126.6398))


@dataclass
class Viewer:
    """An aiortc peer that receives one video track and reads the pixel timestamps."""

    pc: RTCPeerConnection
    stamps: list[formats.Stamp] = field(default_factory=list)
    latencies_us: list[int] = field(default_factory=list)
    frames: int = 0
    unreadable: int = 0
    got: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def wait_frames(self, n: int, within_s: float = 30.0) -> None:
        async def _until() -> None:
            while len(self.stamps) < n:
                self.got.clear()
                await self.got.wait()

        await asyncio.wait_for(_until(), within_s)

    async def close(self) -> None:
        await self.pc.close()
        if self.task is not None:
            self.task.cancel()


async def connect_viewer(hub: VideoHub, key: str) -> Viewer:
    pc = RTCPeerConnection(rtc_configuration([]))
    pc.addTransceiver("video", direction="recvonly")
    viewer = Viewer(pc)
    arrived: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    @pc.on("track")
    def _on_track(track: object) -> None:
        if not arrived.done():
            arrived.set_result(track)

    await pc.setLocalDescription(await pc.createOffer())
    sdp, kind = await hub.offer(key, pc.localDescription.sdp, pc.localDescription.type)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
    track = await asyncio.wait_for(arrived, 10)

    async def _read() -> None:
        try:
            while True:
                frame = await track.recv()  # type: ignore[attr-defined]
                now_us = time.time_ns() // 1000
                viewer.frames += 1
                luma = frame.to_ndarray(format="gray")
                st = formats.read_stamp(luma)
                if st is None:
                    viewer.unreadable += 1
                    continue
                viewer.stamps.append(st)
                viewer.latencies_us.append(now_us - formats.unwrap_time_us(st.time_us, now_us))
                viewer.got.set()
        except MediaStreamError:
            pass

    viewer.task = asyncio.create_task(_read())
    return viewer


@pytest.fixture
async def hub() -> AsyncIterator[VideoHub]:
    h = VideoHub(ice_hosts=["127.0.0.1"], ice_servers=[], stall_after_s=1.0)
    yield h
    await h.close()


@pytest.fixture
async def camera() -> AsyncIterator[SimCamera]:
    cam = SimCamera(0, still_pose, port=free_udp_port(), width=WIDTH, height=HEIGHT, fps=FPS)
    yield cam
    await cam.stop()
