"""The CCTV relay against RTSP servers: GStreamer's (not ours) and our simulator's, decoded by aiortc viewers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from dronedispatch.sim.cctv import SimCctv
from dronedispatch.sim.rtsp_server import RtspServer
from dronedispatch.video.cctv import CameraState, CameraUnreachable, CctvRelay, UnknownCamera
from dronedispatch.video.formats import OfferError
from tests.fixtures.services import free_tcp_port
from tests.video.rtsp_fixtures import PASSWORD, USER, GstCamera, connect_cctv_viewer, offer_sdp


@pytest.fixture(scope="module")
def gst_camera() -> Iterator[GstCamera]:
    cam = GstCamera()
    cam.start()
    yield cam
    cam.stop()


@pytest.fixture
async def relay() -> AsyncIterator[CctvRelay]:
    r = CctvRelay(ice_hosts=["127.0.0.1"], ice_servers=[], open_timeout_s=2.0, read_timeout_s=1.5, linger_s=0.5)
    yield r
    await r.close()


async def until(condition: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {within_s} s: {what}"
        await asyncio.sleep(0.05)


async def test_two_viewers_share_one_pull_of_a_foreign_camera_and_decode_it(
    relay: CctvRelay, gst_camera: GstCamera, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    relay.add_camera("gate", gst_camera.url)
    assert relay.status("gate").state == CameraState.IDLE  # nothing is pulled before someone watches
    a = await connect_cctv_viewer(relay, "gate")
    b = await connect_cctv_viewer(relay, "gate")
    try:
        await a.wait_frames(10)
        await b.wait_frames(10)
        assert a.sizes == b.sizes == {(320, 240)}  # passed through: the camera's own picture size
        jpeg = await relay.snapshot_jpeg("gate")
        assert jpeg[:2] == b"\xff\xd8"
        s = relay.status("gate")
        assert (s.state, s.viewers, s.pulls, s.connections) == (CameraState.LIVE, 2, 1, 1)
    finally:
        await a.close()
        await b.close()
    # the viewers left: the pull stops a moment later
    await until(lambda: relay.status("gate").state == CameraState.IDLE, 15, "idle after the last viewer")
    assert relay.status("gate").viewers == 0
    assert "cctv" in caplog.text and PASSWORD not in caplog.text and f"{USER}:" not in caplog.text


async def test_a_rebooted_camera_comes_back_to_its_viewers(relay: CctvRelay) -> None:
    cam = GstCamera()
    cam.start()
    relay.add_camera("gate", cam.url)
    viewer = await connect_cctv_viewer(relay, "gate")
    try:
        await viewer.wait_frames(5)
        cam.stop()  # the camera reboots: its RTSP server goes away
        await until(lambda: relay.status("gate").state == CameraState.UNREACHABLE, 10, "unreachable")
        reason = relay.status("gate").reason
        assert reason and PASSWORD not in reason
        cam.start()
        before = viewer.frames
        await viewer.wait_frames(before + 10, within_s=30)
        s = relay.status("gate")
        assert (s.state, s.viewers, s.pulls) == (CameraState.LIVE, 1, 1)
        assert s.connections >= 2  # reconnected by itself
    finally:
        await viewer.close()
        cam.stop()


async def test_a_camera_that_does_not_answer_is_a_clear_error_and_state(
    relay: CctvRelay, gst_camera: GstCamera, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    relay.add_camera("closed", f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{free_tcp_port()}/cam")
    relay.add_camera("wrong-password", gst_camera.url.replace(PASSWORD, "not-the-Pa55"))
    pc, sdp = await offer_sdp()
    try:
        with pytest.raises(CameraUnreachable) as refused:
            await asyncio.wait_for(relay.offer("closed", sdp, "offer", wait_s=2.0), 10)
        assert "refused" in refused.value.reason.lower()
        with pytest.raises(CameraUnreachable) as denied:
            await asyncio.wait_for(relay.snapshot_jpeg("wrong-password", wait_s=2.0), 10)
        assert "401" in denied.value.reason and "not-the-Pa55" not in denied.value.reason
        s = relay.status("closed")
        assert s.state == CameraState.UNREACHABLE and s.reason and "refused" in s.reason.lower()
        with pytest.raises(UnknownCamera):
            await relay.offer("nowhere", sdp, "offer")
        with pytest.raises(OfferError):
            await relay.offer("closed", "v=0\r\n", "offer")
    finally:
        await pc.close()
    # nobody waits any more: the pull stops, and the camera keeps its state for the view
    await asyncio.sleep(1.5)
    assert relay.status("closed").state == CameraState.UNREACHABLE
    assert PASSWORD not in caplog.text and "not-the-Pa55" not in caplog.text


async def test_our_simulated_camera_relays_and_recovers_from_a_reboot(relay: CctvRelay) -> None:
    cam = SimCctv("sim-cam", "Simulated", width=320, height=240, fps=25)
    server = RtspServer({"sim-cam": cam}, port=0)
    await server.start()
    relay.add_camera("sim-cam", server.url("sim-cam"))
    viewer = await connect_cctv_viewer(relay, "sim-cam")
    try:
        await viewer.wait_frames(10)
        assert viewer.sizes == {(320, 240)}
        cam.reboot(2.0)
        await until(lambda: relay.status("sim-cam").state == CameraState.UNREACHABLE, 10, "unreachable")
        before = viewer.frames
        await viewer.wait_frames(before + 10, within_s=30)
        s = relay.status("sim-cam")
        assert (s.state, s.pulls) == (CameraState.LIVE, 1) and s.connections >= 2
    finally:
        await viewer.close()
        await server.stop()
        await cam.close()
