"""Live video of the fleet: find each drone's camera stream over MAVLink, relay it, record it.

The application side of :mod:`dronedispatch.video`. When a mission launches, the drone's camera
is asked for its stream (VIDEO_STREAM_INFORMATION), told to start streaming, and the stream is
ingested once and recorded; viewers join it over WebRTC. On scene, a snapshot is attached to
the incident; when the mission ends, the recording is closed and kept as evidence with its
SHA-256 in the audit log. Video never holds a mission up: every failure here is logged and
alerted, and the flight goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from dronedispatch.app.alerts import Alerts
from dronedispatch.app.errors import UnknownObject, Unprocessable, VideoSourceFailed, VideoUnavailable
from dronedispatch.app.fleet import DroneRegistry
from dronedispatch.app.ports import VehicleGateway, VideoStore
from dronedispatch.domain.mission_state import TERMINAL, MissionState
from dronedispatch.mavlink.errors import LinkError
from dronedispatch.store.models import Evidence, Mission
from dronedispatch.video.formats import OfferError
from dronedispatch.video.recording import SnapshotError
from dronedispatch.video.relay import StreamNotFound, VideoHub

log = logging.getLogger(__name__)


class LiveVideo:
    """Also a :class:`~dronedispatch.app.missions.MissionListener`: missions start and end recordings."""

    def __init__(
        self,
        hub: VideoHub,
        recordings_dir: Path,
        registry: DroneRegistry,
        vehicles: VehicleGateway,
        store: VideoStore,
        alerts: Alerts,
    ) -> None:
        self.hub = hub
        self.dir = Path(recordings_dir)
        self._registry = registry
        self._vehicles = vehicles
        self._store = store
        self._alerts = alerts
        self._opening: dict[str, asyncio.Lock] = {}
        self._recording: dict[str, int] = {}  # drone id → mission id being recorded
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for drone_id, mission_id in list(self._recording.items()):
            await self._finish_recording(drone_id, mission_id)
        await self.hub.close()

    async def settle(self) -> None:
        """Wait for the video work already under way (recordings being closed, snapshots being kept)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- streams -------------------------------------------------------------------------------
    async def open(self, drone_id: str) -> str:
        """Make sure the drone's stream is being ingested; returns its stream key."""
        entry = self._registry.get(drone_id)
        if entry is None:
            raise UnknownObject(f"drone {drone_id!r} does not exist", "unknown_drone")
        vehicle = entry.vehicle
        camera = self._vehicles.camera(entry.spec.sysid)
        if vehicle is None or vehicle.health.lost or camera is None:
            raise VideoUnavailable(f"drone {drone_id} is not connected", "vehicle_offline")
        async with self._opening.setdefault(drone_id, asyncio.Lock()):
            if drone_id in self.hub.streams():
                return drone_id
            try:
                info = await camera.stream_information()
                await camera.start_streaming()
            except LinkError as exc:
                raise VideoSourceFailed(f"drone {drone_id}: camera did not answer: {exc}") from exc
            try:
                await self.hub.ensure_stream(drone_id, info.uri)
            except (ValueError, OSError) as exc:
                raise VideoSourceFailed(f"drone {drone_id}: cannot receive {info.uri}: {exc}") from exc
            log.info("video: %s streams %s (%dx%d @ %.0f fps)", drone_id, info.uri, info.width, info.height,
                     info.framerate)  # fmt: skip
            return drone_id

    async def offer(
        self,
        drone_id: str,
        sdp: str,
        type_: str,
        on_viewer: Callable[[Callable[[], Awaitable[None]]], None] | None = None,
    ) -> tuple[str, str]:
        """WebRTC answer for the drone's live video; ``on_viewer`` gets a way to hang this viewer up."""
        key = await self.open(drone_id)
        try:
            return await self.hub.offer(key, sdp, type_, on_viewer=on_viewer)
        except OfferError as exc:
            raise Unprocessable(str(exc), "bad_offer") from exc

    async def snapshot(self, drone_id: str) -> bytes:
        key = await self.open(drone_id)
        try:
            return await self.hub.snapshot_jpeg(key)
        except (SnapshotError, StreamNotFound) as exc:
            raise VideoSourceFailed(f"drone {drone_id}: {exc}") from exc

    # -- mission lifecycle ---------------------------------------------------------------------
    def mission_launched(self, mission: Mission) -> None:
        self._spawn(self._start_recording(mission), f"video-start-{mission.id}")

    def mission_state(self, mission: Mission, state: MissionState) -> None:
        if state == MissionState.ON_SCENE:
            self._spawn(self._scene_snapshot(mission), f"video-snapshot-{mission.id}")
        elif state in TERMINAL and mission.id is not None and self._recording.get(mission.drone_id) == mission.id:
            self._spawn(self._finish_recording(mission.drone_id, mission.id), f"video-finish-{mission.id}")

    def telemetry(self, drone_id: str, lat: float, lon: float, alt: float, heading: float) -> None:
        if drone_id in self._recording:
            self.hub.add_telemetry(drone_id, time.time(), lat, lon, alt, heading)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_recording(self, mission: Mission) -> None:
        assert mission.id is not None
        try:
            key = await self.open(mission.drone_id)
            self.dir.mkdir(parents=True, exist_ok=True)
            path = self.dir / f"mission-{mission.id}-{mission.drone_id}.mp4"
            loop = asyncio.get_running_loop()

            def failed(exc: BaseException) -> None:  # from the recorder's thread, once
                loop.call_soon_threadsafe(self._recording_stopped, mission, exc)

            await self.hub.start_recording(key, path, failed)
            self._recording[mission.drone_id] = mission.id
            await asyncio.to_thread(self._store.update_mission, mission.id, recording_path=str(path))
        except (VideoUnavailable, VideoSourceFailed, UnknownObject, RuntimeError, OSError) as exc:
            reason = exc.reason if isinstance(exc, VideoUnavailable | VideoSourceFailed | UnknownObject) else str(exc)
            self._alerts.raise_("warning", "video_unavailable", f"mission {mission.id}: no recording: {reason}",
                                drone_id=mission.drone_id, mission_id=mission.id)  # fmt: skip

    async def _scene_snapshot(self, mission: Mission) -> None:
        assert mission.id is not None
        try:
            jpeg = await self.snapshot(mission.drone_id)
        except (VideoUnavailable, VideoSourceFailed, UnknownObject) as exc:
            log.warning("mission %s: no snapshot on scene: %s", mission.id, exc.reason)
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"incident-{mission.incident_id}-mission-{mission.id}-on-scene.jpg"
        await asyncio.to_thread(path.write_bytes, jpeg)
        await asyncio.to_thread(self._keep, path, "snapshot", "image/jpeg", hashlib.sha256(jpeg).hexdigest(), mission,
                                None)  # fmt: skip

    def _recording_stopped(self, mission: Mission, exc: BaseException) -> None:
        """Writing the recording failed (the disk is full): the mission flies on; the pilot is told now."""
        self._alerts.raise_(
            "critical", "recording_stopped",
            f"mission {mission.id}: video recording stopped: {exc}; the flight goes on, the recording is not kept",
            drone_id=mission.drone_id, mission_id=mission.id,
        )  # fmt: skip

    async def _finish_recording(self, drone_id: str, mission_id: int) -> None:
        self._recording.pop(drone_id, None)
        try:
            info = await self.hub.stop_recording(drone_id)
        except (RuntimeError, StreamNotFound) as exc:
            log.warning("mission %s: recording not finished: %s", mission_id, exc)
            return
        mission = await asyncio.to_thread(self._store.get_mission, mission_id)
        if info.error is not None:
            # cut short: never listed as evidence (its files are gone); the audit log says why there is none
            await asyncio.to_thread(self._store.audit, "system", "recording.failed", "mission", mission_id,
                                    reason=info.error, frames=info.frames)  # fmt: skip
        else:
            await asyncio.to_thread(self._keep, info.path, "recording", "video/mp4", info.sha256, mission,
                                    info.duration_s)  # fmt: skip
            await asyncio.to_thread(
                self._keep, info.vtt_path, "subtitles", "text/vtt", info.vtt_sha256, mission, info.duration_s
            )
        entry = self._registry.get(drone_id)
        camera = self._vehicles.camera(entry.spec.sysid) if entry is not None and self._connected(drone_id) else None
        await self.hub.stop_stream(drone_id)
        if camera is not None:
            try:
                await camera.stop_streaming()
            except LinkError as exc:
                log.info("video: %s did not stop streaming: %s", drone_id, exc)

    def _connected(self, drone_id: str) -> bool:
        entry = self._registry.get(drone_id)
        return entry is not None and entry.vehicle is not None and not entry.vehicle.health.lost

    def _keep(self, path: Path, kind: str, media_type: str, sha256: str, mission: Mission,
              duration_s: float | None) -> None:  # fmt: skip
        """Record a closed file as evidence, hash in the audit log (blocking: from a worker thread)."""
        size = path.stat().st_size if path.exists() else 0
        self._store.add_evidence(
            Evidence(
                mission_id=mission.id,
                incident_id=mission.incident_id,
                kind=kind,
                path=str(path),
                media_type=media_type,
                sha256=sha256,
                size_bytes=size,
                duration_s=duration_s,
            )
        )
        log.info("mission %s: %s kept: %s (sha256 %s…)", mission.id, kind, path, sha256[:12])
