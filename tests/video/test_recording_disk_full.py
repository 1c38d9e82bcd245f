"""A recording whose disk fills up: the writer stops, says so at once, and leaves nothing half-written."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path
from typing import Any

import pytest

from dronedispatch.sim.camera import SimCamera
from dronedispatch.video import recording
from dronedispatch.video.relay import VideoHub

#: Pictures written before the disk is full.
ROOM_FOR = 10


class FillingDisk:
    """An MP4 output whose writes fail with ENOSPC after a few pictures, as on a full file system."""

    def __init__(self, real: Any) -> None:
        self._real, self._muxed = real, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def mux(self, packet: Any) -> None:
        self._muxed += 1
        if self._muxed > ROOM_FOR:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._real.mux(packet)


async def test_a_full_disk_stops_the_recording_with_a_reason_and_removes_its_files(
    hub: VideoHub, camera: SimCamera, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = recording.av.open
    monkeypatch.setattr(recording.av, "open", lambda *a, **kw: FillingDisk(real_open(*a, **kw)))
    await hub.ensure_stream("d1", f"udp://127.0.0.1:{camera.target[1]}")
    await camera.start()
    await hub.snapshot_jpeg("d1", wait_s=20)
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    errors: list[BaseException] = []

    def failed(exc: BaseException) -> None:  # from the writer's thread
        errors.append(exc)
        loop.call_soon_threadsafe(stopped.set)

    path = tmp_path / "mission-1.mp4"
    await hub.start_recording("d1", path, failed)
    await asyncio.wait_for(stopped.wait(), 30)  # told while the stream still runs, not at the end
    await asyncio.sleep(0.5)  # more pictures arrive after the failure: they are dropped, not written
    info = await hub.stop_recording("d1")

    assert len(errors) == 1 and getattr(errors[0], "errno", None) == errno.ENOSPC
    assert info.error is not None and "no room left" in info.error
    assert info.sha256 == "" and not path.exists() and not info.vtt_path.exists()
