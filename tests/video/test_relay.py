"""SimCamera → VideoHub → aiortc viewers over real loopback UDP and WebRTC."""

from __future__ import annotations

import asyncio

from dronedispatch.sim.camera import SimCamera
from dronedispatch.video.relay import VideoHub

from .conftest import connect_viewer


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
