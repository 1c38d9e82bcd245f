"""Fixed CCTV cameras: live video over WebRTC, its state, snapshots, and the picture taken when one reported."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel

from dronedispatch.api.access import CameraId, IncidentId, ScopeDep
from dronedispatch.api.deps import AnyUser, RuntimeDep
from dronedispatch.api.routes.video import SessionDescription
from dronedispatch.app.cctv import CameraVideoStatus
from dronedispatch.store.repo import NotFound

router = APIRouter(tags=["video"])


class CameraVideoPublic(BaseModel):
    camera_id: CameraId
    live: bool
    snapshot: bool
    state: str
    reason: str | None
    since: datetime | None
    viewers: int

    @classmethod
    def of(cls, s: CameraVideoStatus) -> CameraVideoPublic:
        return cls(camera_id=s.camera_id, live=s.live, snapshot=s.snapshot, state=s.state, reason=s.reason,
                   since=s.since, viewers=s.viewers)  # fmt: skip


@router.get(
    "/cameras/video",
    response_model=list[CameraVideoPublic],
    summary="Every camera with a stream or snapshot URL: idle, connecting, live or unreachable (with why, since when)",
)
def cameras_video(runtime: RuntimeDep, _: AnyUser, scope: ScopeDep) -> list[CameraVideoPublic]:
    visible = runtime.access.camera_visible
    return [CameraVideoPublic.of(s) for s in runtime.cctv.statuses() if visible(scope, s.camera_id)]


@router.get(
    "/cameras/{camera_id}/video",
    response_model=CameraVideoPublic,
    summary="One camera's live video state: idle, connecting, live or unreachable (with why, since when)",
)
def camera_video(runtime: RuntimeDep, _: AnyUser, camera_id: CameraId) -> CameraVideoPublic:
    return CameraVideoPublic.of(runtime.cctv.status(camera_id))


@router.post(
    "/cameras/{camera_id}/video/offer",
    response_model=SessionDescription,
    summary="WebRTC: the browser's SDP offer for the camera's live video; the answer comes back",
    responses={503: {"description": "The camera does not answer (the reason says why)"}},
)
async def camera_video_offer(
    runtime: RuntimeDep, _: AnyUser, camera_id: CameraId, body: SessionDescription
) -> SessionDescription:
    sdp, type_ = await runtime.cctv.offer(camera_id, body.sdp, body.type)
    return SessionDescription(sdp=sdp, type=type_)


@router.get(
    "/cameras/{camera_id}/snapshot.jpg",
    summary="The camera's current picture (JPEG): its snapshot URL, else a keyframe of its stream",
    responses={200: {"content": {"image/jpeg": {}}}, 503: {"description": "The camera does not answer"}},
)
async def camera_snapshot(runtime: RuntimeDep, _: AnyUser, camera_id: CameraId) -> Response:
    jpeg = await runtime.cctv.snapshot(camera_id)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get(
    "/incidents/{incident_id}/camera-snapshot.jpg",
    summary="The reporting camera's picture taken when the incident was reported (JPEG, SHA-256 in X-SHA256)",
    responses={200: {"content": {"image/jpeg": {}}}},
)
def incident_camera_snapshot(runtime: RuntimeDep, _: AnyUser, incident_id: IncidentId) -> FileResponse:
    runtime.store.get_incident(incident_id)  # 404 for an unknown incident
    evidence = runtime.cctv.report_snapshot(incident_id)
    if evidence is None or not Path(evidence.path).is_file():
        raise NotFound("camera snapshot of incident", incident_id)
    return FileResponse(evidence.path, media_type="image/jpeg", headers={"X-SHA256": evidence.sha256,
                                                                         "Cache-Control": "no-store"})  # fmt: skip
