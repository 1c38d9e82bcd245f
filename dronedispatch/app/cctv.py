"""Fixed CCTV cameras in the operations view: live video, snapshots, and the picture at the moment of a report.

The application side of :mod:`dronedispatch.video.cctv`. A camera of the cameras file with a
``stream`` can be watched live (one RTSP pull shared by every viewer, only while someone watches);
a snapshot comes from its ``snapshot_url`` when it has one and answers, else from its stream. When
an incident is created from a report naming such a camera, the camera's picture of that moment is
taken in the background and kept as evidence of the incident (SHA-256 in the audit log), so the
incident card can show what the camera saw when it raised the alarm.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from dronedispatch.app.errors import UnknownObject, Unprocessable, VideoSourceFailed
from dronedispatch.app.ports import AuditLog, EvidenceRepository
from dronedispatch.bus import EventBus
from dronedispatch.domain.assets import AssetRegistry, Camera
from dronedispatch.events import IncidentChanged
from dronedispatch.schemas import IncidentPublic
from dronedispatch.store.models import Evidence
from dronedispatch.video.cctv import CameraUnreachable, CctvRelay, fetch_snapshot
from dronedispatch.video.formats import OfferError

log = logging.getLogger(__name__)

#: An incident older than this when first seen (a restart replaying state) gets no "moment of the report" picture.
REPORT_WINDOW_S = 60.0


class CameraEvidenceStore(EvidenceRepository, AuditLog, Protocol):
    pass


@dataclass(frozen=True, slots=True)
class CameraVideoStatus:
    camera_id: str
    live: bool
    """The camera has a stream that can be watched."""
    snapshot: bool
    """A snapshot can be asked for (a snapshot URL or a stream)."""
    state: str
    """idle, connecting, live, unreachable; 'none' for a camera without a stream."""
    reason: str | None
    since: datetime | None
    viewers: int


class CameraVideo:
    def __init__(
        self,
        relay: CctvRelay,
        cameras: AssetRegistry,
        store: CameraEvidenceStore,
        evidence_dir: Path,
        *,
        offer_wait_s: float = 5.0,
        snapshot_timeout_s: float = 3.0,
    ) -> None:
        self.relay = relay
        self._cameras = cameras
        self._store = store
        self.dir = Path(evidence_dir)
        self.offer_wait_s = offer_wait_s
        self.snapshot_timeout_s = snapshot_timeout_s
        for camera in cameras.cameras:
            if camera.is_camera and camera.stream:
                relay.add_camera(camera.id, camera.stream)
        self._seen: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._watch: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, bus: EventBus) -> None:
        """Watch the bus for incidents created from a camera's report."""
        self._watch = asyncio.create_task(self._follow(bus), name="cctv report snapshots")

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        for task in list(self._tasks):  # a camera that does not answer must not hold the shutdown up
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.relay.close()

    async def settle(self) -> None:
        """Wait for the report snapshots already under way."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- live video ------------------------------------------------------------------------------
    def status(self, camera_id: str) -> CameraVideoStatus:
        camera = self._camera(camera_id)
        if camera_id not in self.relay.cameras():
            return CameraVideoStatus(camera_id, False, bool(camera.snapshot_url), "none", None, None, 0)
        s = self.relay.status(camera_id)
        return CameraVideoStatus(camera_id, True, True, str(s.state), s.reason, s.since, s.viewers)

    def statuses(self) -> list[CameraVideoStatus]:
        return [self.status(c.id) for c in self._cameras.cameras if c.stream or c.snapshot_url]

    async def offer(self, camera_id: str, sdp: str, type_: str) -> tuple[str, str]:
        camera = self._camera(camera_id)
        if not camera.stream:
            raise UnknownObject(f"camera {camera_id} has no live stream", "no_stream")
        try:
            return await self.relay.offer(camera_id, sdp, type_, wait_s=self.offer_wait_s)
        except OfferError as exc:
            raise Unprocessable(str(exc), "bad_offer") from exc
        except CameraUnreachable as exc:
            raise VideoSourceFailed(f"camera {camera_id} does not answer: {exc.reason}", "camera_unreachable") from exc

    async def snapshot(self, camera_id: str) -> bytes:
        """The camera's current picture: its snapshot URL first, else a keyframe of its stream."""
        camera = self._camera(camera_id)
        if not camera.stream and not camera.snapshot_url:
            raise UnknownObject(f"camera {camera_id} has neither a stream nor a snapshot URL", "no_video")
        reasons = []
        if camera.snapshot_url:
            try:
                return await fetch_snapshot(camera.snapshot_url, self.snapshot_timeout_s)
            except CameraUnreachable as exc:
                reasons.append(exc.reason)
                log.info("camera %s: %s", camera_id, exc.reason)
        if camera.stream:
            try:
                return await self.relay.snapshot_jpeg(camera_id, wait_s=self.offer_wait_s)
            except CameraUnreachable as exc:
                reasons.append(exc.reason)
        raise VideoSourceFailed(f"camera {camera_id} does not answer: {'; '.join(reasons)}", "camera_unreachable")

    def _camera(self, camera_id: str) -> Camera:
        camera = self._cameras.get(camera_id)
        if camera is None or not camera.is_camera:
            raise UnknownObject(f"camera {camera_id!r} does not exist", "unknown_camera")
        return camera

    # -- the picture at the moment of the report ---------------------------------------------------
    async def _follow(self, bus: EventBus) -> None:
        while True:  # a lagging subscription is closed by the bus: subscribe again
            sub = bus.subscribe()
            try:
                async for event in sub:
                    if isinstance(event, IncidentChanged):
                        self.incident_changed(event.data)
            finally:
                sub.close()
            await asyncio.sleep(0.1)

    def incident_changed(self, incident: IncidentPublic) -> None:
        """A new incident raised through a camera with a picture gets that picture, once."""
        if incident.id in self._seen or incident.camera_id is None or incident.report_count != 1:
            return
        camera = self._cameras.get(incident.camera_id)
        if camera is None or not camera.is_camera or not (camera.stream or camera.snapshot_url):
            return
        if (datetime.now(UTC) - incident.created_at).total_seconds() > REPORT_WINDOW_S:
            return
        self._seen.add(incident.id)
        task = asyncio.create_task(self._keep_report_snapshot(incident.id, camera.id), name=f"cctv-{incident.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _keep_report_snapshot(self, incident_id: int, camera_id: str) -> None:
        try:
            jpeg = await self.snapshot(camera_id)
        except (VideoSourceFailed, UnknownObject) as exc:
            log.warning("incident %s: no picture from camera %s: %s", incident_id, camera_id, exc.reason)
            return
        path = self.dir / report_snapshot_name(incident_id, camera_id)
        await asyncio.to_thread(self._keep, incident_id, camera_id, path, jpeg)

    def _keep(self, incident_id: int, camera_id: str, path: Path, jpeg: bytes) -> None:
        """Write the picture and record it as evidence, hash in the audit log (blocking: a worker thread)."""
        if self.report_snapshot(incident_id) is not None:  # several nodes see the same incident event
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg)
        sha256 = hashlib.sha256(jpeg).hexdigest()
        self._store.add_evidence(
            Evidence(incident_id=incident_id, kind="snapshot", path=str(path), media_type="image/jpeg",
                     sha256=sha256, size_bytes=len(jpeg)),
            camera_id=camera_id,
        )  # fmt: skip
        log.info("incident %s: camera %s picture kept: %s (sha256 %s…)", incident_id, camera_id, path, sha256[:12])

    def report_snapshot(self, incident_id: int) -> Evidence | None:
        """The picture kept when the incident was reported, if any (blocking: a worker thread)."""
        prefix = report_snapshot_name(incident_id, "")
        for e in self._store.list_evidence(incident_id=incident_id):
            if e.kind == "snapshot" and e.mission_id is None and Path(e.path).name.startswith(prefix):
                return e
        return None


def report_snapshot_name(incident_id: int, camera_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", camera_id)
    return f"incident-{incident_id}-camera-{safe}{'.jpg' if safe else ''}"
