"""One viewer of a stream hung up on its own (a share link revoked or expired), the others kept."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

from dronedispatch.sim.camera import SimCamera
from dronedispatch.video.relay import VideoHub

from .conftest import connect_viewer


class _Remembering:
    """The hub as connect_viewer uses it, keeping how each viewer it connects can be hung up."""

    def __init__(self, hub: VideoHub) -> None:
        self.hub = hub
        self.hang_ups: list[Callable[[], Awaitable[None]]] = []

    async def offer(self, key: str, sdp: str, type_: str) -> tuple[str, str]:
        return await self.hub.offer(key, sdp, type_, on_viewer=self.hang_ups.append)


async def test_hang_up_ends_one_viewer_only(hub: VideoHub, camera: SimCamera) -> None:
    await hub.ensure_stream("d1", f"udp://127.0.0.1:{camera.target[1]}")
    await camera.start()
    remembering = _Remembering(hub)
    shared = await connect_viewer(cast(Any, remembering), "d1")
    other = await connect_viewer(hub, "d1")
    try:
        await shared.wait_frames(3)
        await other.wait_frames(3)
        assert hub.status("d1").viewers == 2 and len(remembering.hang_ups) == 1
        await remembering.hang_ups[0]()
        assert shared.task is not None
        await asyncio.wait_for(shared.task, 20)  # its track ended
        assert hub.status("d1").viewers == 1
        seen = len(other.stamps)
        await other.wait_frames(seen + 5)  # the other viewer goes on watching
        await remembering.hang_ups[0]()  # hanging up twice is harmless
    finally:
        await shared.close()
        await other.close()
