"""Live video and evidence: WebRTC offers, snapshots, recordings."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from dronedispatch.api.access import DroneId, EvidenceId, MissionId
from dronedispatch.api.deps import AnyUser, RuntimeDep
from dronedispatch.store.models import Evidence
from dronedispatch.store.repo import NotFound

router = APIRouter(tags=["video"])


class SessionDescription(BaseModel):
    sdp: str = Field(max_length=100_000, description="SDP text")
    type: str = Field(pattern="^(offer|answer)$", description="'offer' from the browser, 'answer' back")


class EvidencePublic(BaseModel):
    id: int
    mission_id: int | None
    incident_id: int | None
    kind: str
    media_type: str
    sha256: str
    size_bytes: int
    duration_s: float | None
    url: str


@router.post(
    "/drones/{drone_id}/video/offer",
    response_model=SessionDescription,
    summary="WebRTC: the browser's SDP offer for the drone's live video; the answer comes back",
)
async def video_offer(
    runtime: RuntimeDep, _: AnyUser, drone_id: DroneId, body: SessionDescription
) -> SessionDescription:
    sdp, type_ = await runtime.video.offer(drone_id, body.sdp, body.type)
    return SessionDescription(sdp=sdp, type=type_)


@router.get(
    "/drones/{drone_id}/snapshot.jpg",
    summary="The drone camera's latest picture (JPEG)",
    responses={200: {"content": {"image/jpeg": {}}}},
)
async def snapshot(runtime: RuntimeDep, _: AnyUser, drone_id: DroneId) -> Response:
    jpeg = await runtime.video.snapshot(drone_id)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get(
    "/missions/{mission_id}/evidence",
    response_model=list[EvidencePublic],
    summary="Recordings, subtitles and snapshots kept for a mission, with their SHA-256",
)
def mission_evidence(runtime: RuntimeDep, _: AnyUser, mission_id: MissionId) -> list[EvidencePublic]:
    runtime.store.get_mission(mission_id)  # 404 for an unknown mission
    return [_public(e) for e in runtime.store.list_evidence(mission_id=mission_id)]


@router.get(
    "/evidence/{evidence_id}",
    summary="Download one evidence file",
    responses={200: {"content": {"video/mp4": {}, "text/vtt": {}, "image/jpeg": {}}}},
)
def evidence_file(runtime: RuntimeDep, principal: AnyUser, evidence_id: EvidenceId) -> FileResponse:
    e = runtime.store.get_evidence(evidence_id)
    path = Path(e.path)
    if not path.is_file():
        raise NotFound("evidence file", e.path)
    runtime.store.audit(principal.username, "evidence.download", "evidence", evidence_id, sha256=e.sha256)
    return FileResponse(path, media_type=e.media_type, filename=path.name, headers={"X-SHA256": e.sha256})


def evidence_url(evidence_id: int) -> str:
    return f"/api/v1/evidence/{evidence_id}"


def _public(e: Evidence) -> EvidencePublic:
    assert e.id is not None
    return EvidencePublic(id=e.id, mission_id=e.mission_id, incident_id=e.incident_id, kind=e.kind,
                          media_type=e.media_type, sha256=e.sha256, size_bytes=e.size_bytes,
                          duration_s=e.duration_s, url=evidence_url(e.id))  # fmt: skip
