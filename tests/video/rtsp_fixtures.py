"""A foreign RTSP camera for the CCTV tests: GStreamer's RTSP server run by the system python as a subprocess."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from dronedispatch.video.cctv import CctvRelay
from dronedispatch.video.relay import rtc_configuration
from tests.fixtures.services import free_tcp_port

SERVER_SCRIPT = Path(__file__).with_name("gst_rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"
USER, PASSWORD = "operator", "s3cret-Pa55"


class GstCamera:
    """``videotestsrc ! x264enc ! rtph264pay`` behind basic auth at rtsp://USER:PASSWORD@127.0.0.1:port/cam."""

    def __init__(self, width: int = 320, height: int = 240, fps: int = 25, port: int | None = None) -> None:
        self.port = port or free_tcp_port()
        self.size = (width, height, fps)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{self.port}/cam"

    def start(self) -> None:
        w, h, fps = self.size
        args = [SYSTEM_PYTHON, str(SERVER_SCRIPT), str(self.port), "cam", str(w), str(h), str(fps), USER, PASSWORD]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=sys.stderr)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "ready" once it listens
        if line.strip() != b"ready":
            self.stop()
            raise RuntimeError(f"GStreamer RTSP server did not start (said {line!r})")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


@dataclass
class CctvViewer:
    """An aiortc peer that decodes the relayed video."""

    pc: RTCPeerConnection
    frames: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None

    async def wait_frames(self, n: int, within_s: float = 20.0) -> None:
        deadline = time.monotonic() + within_s
        while self.frames < n:
            assert time.monotonic() < deadline, f"only {self.frames} of {n} frames within {within_s} s"
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self.pc.close()
        if self.task is not None:
            self.task.cancel()


async def offer_sdp() -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection(rtc_configuration([]))
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def attach_viewer(pc: RTCPeerConnection, answer_sdp: str) -> CctvViewer:
    """Apply the answer and decode frames as they come."""
    viewer = CctvViewer(pc)
    arrived: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    @pc.on("track")
    def _on_track(track: object) -> None:
        if not arrived.done():
            arrived.set_result(track)

    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
    track = await asyncio.wait_for(arrived, 10)

    async def _read() -> None:
        try:
            while True:
                frame = await track.recv()  # type: ignore[attr-defined]
                viewer.sizes.add((frame.width, frame.height))
                viewer.frames += 1
        except MediaStreamError:
            pass

    viewer.task = asyncio.create_task(_read())
    return viewer


async def connect_cctv_viewer(relay: CctvRelay, camera_id: str) -> CctvViewer:
    pc, sdp = await offer_sdp()
    answer, _ = await relay.offer(camera_id, sdp, "offer")
    return await attach_viewer(pc, answer)


async def relay_fixture(**kw: float) -> AsyncIterator[CctvRelay]:
    relay = CctvRelay(ice_hosts=["127.0.0.1"], ice_servers=[], **kw)
    yield relay
    await relay.close()
