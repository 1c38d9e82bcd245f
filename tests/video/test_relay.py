"""SimCamera → VideoHub → aiortc viewers over real loopback UDP and WebRTC."""

from __future__ import annotations

import asyncio
import itertools
import socket

import cv2
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from dronedispatch.sim.camera import SimCamera
from dronedispatch.video import formats
from dronedispatch.video.formats import OfferError
from dronedispatch.video.recording import SnapshotError
from dronedispatch.video.relay import StreamNotFound, VideoHub, rtc_configuration

from .conftest import HEIGHT, WIDTH, connect_viewer, free_udp_port, still_pose


def uri(camera: SimCamera) -> str:
    return f"udp://127.0.0.1:{camera.target[1]}"


async def test_viewers_receive_frames_with_readable_timestamps(hub: VideoHub, camera: SimCamera) -> None:
    await hub.ensure_stream("d1", uri(camera))
    await camera.start()
    viewers = [await connect_viewer(hub, "d1") for _ in range(2)]
    try:
        for v in viewers:
            await v.wait_frames(20)
            counters = [s.counter for s in v.stamps]
            assert counters == sorted(counters)  # in order, none repeated
            assert len(set(counters)) == len(counters)
            assert all(lat > 0 for lat in v.latencies_us)  # stamped before it was seen
        status = hub.status("d1")
        assert status.viewers == 2 and status.state == "live"
    finally:
        for v in viewers:
            await v.close()


async def test_a_stream_that_stops_and_resumes_recovers_by_itself(hub: VideoHub, camera: SimCamera) -> None:
    await hub.ensure_stream("d1", uri(camera))
    await camera.start()
    viewer = await connect_viewer(hub, "d1")
    try:
        await viewer.wait_frames(10)
        await camera.stop()  # the vehicle stops streaming (or the link drops)
        await asyncio.wait_for(hub.wait_state("d1", "stalled"), 20)
        before = len(viewer.stamps)
        last_counter = viewer.stamps[-1].counter
        await camera.start()  # a new RTP session: new SSRC, sequence numbers and timestamps
        await viewer.wait_frames(before + 10)
        resumed = [s.counter for s in viewer.stamps[before:]]
        assert resumed[0] > last_counter and resumed == sorted(resumed)
        assert hub.status("d1").state == "live" and hub.status("d1").reconnects >= 1
    finally:
        await viewer.close()


async def test_snapshot_is_a_jpeg_of_the_live_picture(hub: VideoHub, camera: SimCamera) -> None:
    await hub.ensure_stream("d1", uri(camera))
    await camera.start()
    data = await hub.snapshot_jpeg("d1", wait_s=20)
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (HEIGHT, WIDTH, 3)
    assert formats.read_stamp(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)) is not None


async def test_unknown_streams_and_bad_offers_are_clear_errors(hub: VideoHub, camera: SimCamera) -> None:
    with pytest.raises(StreamNotFound):
        await hub.offer("nope", "v=0\r\n", "offer")
    with pytest.raises(StreamNotFound):
        await hub.snapshot_jpeg("nope")
    await hub.ensure_stream("d1", uri(camera))
    with pytest.raises(OfferError, match="offer"):
        await hub.offer("d1", "v=0\r\n", "answer")
    with pytest.raises(OfferError, match="video"):
        await hub.offer("d1", "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "offer")
    with pytest.raises(SnapshotError):
        await hub.snapshot_jpeg("d1", wait_s=0.1)  # camera not started: no picture yet
    with pytest.raises(ValueError, match="scheme"):
        await hub.ensure_stream("d2", "gopher://127.0.0.1:70")
    assert hub.streams() == ["d1"]


async def test_the_answer_offers_only_configured_hosts(hub: VideoHub, camera: SimCamera) -> None:
    await hub.ensure_stream("d1", uri(camera))
    viewer = await connect_viewer(hub, "d1")
    try:
        answer = viewer.pc.remoteDescription.sdp
        hosts = {line.split()[4] for line in answer.splitlines() if line.startswith("a=candidate:")}
        assert hosts == {"127.0.0.1"}
        assert "H264/90000" in answer and "VP8" not in answer
    finally:
        await viewer.close()


async def test_stop_stream_hangs_up_viewers(hub: VideoHub, camera: SimCamera) -> None:
    await hub.ensure_stream("d1", uri(camera))
    await camera.start()
    viewer = await connect_viewer(hub, "d1")
    await viewer.wait_frames(3)
    await hub.stop_stream("d1")
    assert viewer.task is not None
    await asyncio.wait_for(viewer.task, 20)  # the track ended
    assert "d1" not in hub.streams()
    await viewer.close()


class _LossyForwarder(asyncio.DatagramProtocol):
    """Copies datagrams to a port, dropping every n-th one and injecting garbage now and then."""

    def __init__(self, port: int, drop_every: int) -> None:
        self.port, self.drop_every, self.count = port, drop_every, 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: object) -> None:
        assert self.transport is not None
        self.count += 1
        if self.count % 17 == 0:
            self.transport.sendto(b"\x80\x60garbage", ("127.0.0.1", self.port))  # truncated RTP
            self.transport.sendto(b"\x00" * 40, ("127.0.0.1", self.port))  # not RTP at all
        if self.count % self.drop_every:
            self.transport.sendto(data, ("127.0.0.1", self.port))


async def test_packet_loss_and_garbage_cost_pictures_not_the_stream(hub: VideoHub) -> None:
    loop = asyncio.get_running_loop()
    ingest_port = free_udp_port()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _LossyForwarder(ingest_port, drop_every=60), local_addr=("127.0.0.1", 0)
    )
    cam = SimCamera(0, still_pose, port=transport.get_extra_info("sockname")[1], width=WIDTH, height=HEIGHT)
    await hub.ensure_stream("d1", f"udp://127.0.0.1:{ingest_port}")
    await cam.start()
    viewer = await connect_viewer(hub, "d1")
    try:
        while hub.status("d1").lost == 0:
            await viewer.wait_frames(len(viewer.stamps) + 1, within_s=60)
        await viewer.wait_frames(len(viewer.stamps) + 10, within_s=60)  # and pictures come back
        counters = [s.counter for s in viewer.stamps]
        assert counters == sorted(counters) and len(set(counters)) == len(counters)
        assert max(b - a for a, b in itertools.pairwise(counters)) > 1  # a gap: damage dropped
        assert viewer.unreadable == 0  # nothing garbled reached the viewer
    finally:
        await viewer.close()
        await cam.stop()
        transport.close()


async def test_a_port_in_use_is_a_clear_error(hub: VideoHub) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen for video on 127.0.0.1:{port}"):
            await hub.ensure_stream("d1", f"udp://127.0.0.1:{port}")
    assert hub.streams() == []


async def test_a_viewer_that_never_connects_is_hung_up_on(camera: SimCamera) -> None:
    hub = VideoHub(connect_timeout_s=0.5)
    try:
        await hub.ensure_stream("d1", uri(camera))
        pc = RTCPeerConnection(rtc_configuration([]))
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        await hub.offer("d1", pc.localDescription.sdp, "offer")  # the answer is never applied
        assert hub.status("d1").viewers == 1
        await pc.close()
        await asyncio.sleep(2.0)  # well past the 0.5 s connect timeout
        assert hub.status("d1").viewers == 0
    finally:
        await hub.close()


async def test_a_stalled_stream_gives_no_stale_snapshot(hub: VideoHub, camera: SimCamera) -> None:
    await hub.ensure_stream("d1", uri(camera))
    assert hub.status("d1").state == "waiting"
    await camera.start()
    await hub.snapshot_jpeg("d1", wait_s=20)
    await camera.stop()
    await asyncio.wait_for(hub.wait_state("d1", "stalled"), 20)
    with pytest.raises(SnapshotError, match="recent"):
        await hub.snapshot_jpeg("d1", wait_s=0.2, max_age_s=0.5)
    await camera.start()
    assert (await hub.snapshot_jpeg("d1", wait_s=20, max_age_s=0.5))[:2] == b"\xff\xd8"


async def test_foreign_and_mdns_candidates_never_reach_ice(hub: VideoHub, camera: SimCamera) -> None:
    import aioice.ice

    await hub.ensure_stream("d1", uri(camera))
    await camera.start()
    pc = RTCPeerConnection(rtc_configuration([]))
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    extra = (
        "a=candidate:9 1 udp 2122260223 0b5e7a6c-1111-2222-3333-444455556666.local 40002 typ host\r\n"
        "a=candidate:8 1 udp 2122260223 192.0.2.77 40003 typ host\r\n"
    )
    offer = pc.localDescription.sdp.replace("a=end-of-candidates", extra + "a=end-of-candidates", 1)
    connected = asyncio.Event()
    pc.on("connectionstatechange", lambda: connected.set() if pc.connectionState == "connected" else None)
    try:
        answer, kind = await hub.offer("d1", offer, "offer")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type=kind))
        await asyncio.wait_for(connected.wait(), 20)
        # aioice creates its multicast DNS responder only to resolve a .local candidate.
        assert getattr(aioice.ice._mdns, "protocol", None) is None
    finally:
        await pc.close()
