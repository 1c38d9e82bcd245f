"""Continuous overwatch of an incident: ask for coverage, and its timeline (drones on scene, hand-overs, gaps)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from dronedispatch.api.access import IncidentId
from dronedispatch.api.deps import AnyUser, Operator, RuntimeDep
from dronedispatch.schemas import CoverageRequest, IncidentPublic

router = APIRouter(tags=["incidents"])


@router.get(
    "/incidents/{incident_id}/coverage",
    summary="Coverage: the request, the drone on scene, the relief plan, intervals per drone, hand-overs and gaps",
)
def get_coverage(runtime: RuntimeDep, _: AnyUser, incident_id: IncidentId) -> dict[str, Any]:
    return runtime.overwatch.coverage(incident_id)


@router.put(
    "/incidents/{incident_id}/coverage",
    response_model=IncidentPublic,
    summary="Ask for coverage for a duration or until closed (mode none ends it)",
)
def put_coverage(
    runtime: RuntimeDep, principal: Operator, incident_id: IncidentId, body: CoverageRequest
) -> IncidentPublic:
    incident = runtime.overwatch.request_coverage(incident_id, body.mode, body.duration_s, principal.username)
    return IncidentPublic.of(incident)
