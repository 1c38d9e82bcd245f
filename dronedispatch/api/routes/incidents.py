from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, status

from dronedispatch.api.access import IncidentId, ScopeDep
from dronedispatch.api.deps import AnyUser, Limit, Offset, Operator, RuntimeDep
from dronedispatch.api.routes.video import evidence_url
from dronedispatch.schemas import CloseRequest, DispatchRequest, IncidentCreate, IncidentPublic, MissionPublic

router = APIRouter(tags=["incidents"])


@router.get("/incidents", response_model=list[IncidentPublic], summary="List incidents, newest first")
def list_incidents(
    runtime: RuntimeDep,
    _: AnyUser,
    scope: ScopeDep,
    status_: str | None = Query(default=None, alias="status", pattern="^(open|dispatched|closed)$"),
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[IncidentPublic]:
    return [
        IncidentPublic.of(i)
        for i in runtime.store.list_incidents(status=status_, limit=limit, offset=offset, district=scope.district)
    ]


@router.post(
    "/incidents",
    response_model=IncidentPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Report an incident (merged into a matching open one when it is the same event)",
)
def create_incident(runtime: RuntimeDep, principal: Operator, scope: ScopeDep, body: IncidentCreate) -> IncidentPublic:
    runtime.access.check_report(scope, runtime.dispatcher.report_of(body))  # 403 outside the account's district
    incident = runtime.dispatcher.create_incident(body, principal.username)
    if body.coverage is not None and body.coverage.mode != "none" and incident.id is not None:
        incident = runtime.overwatch.request_coverage(
            incident.id, body.coverage.mode, body.coverage.duration_s, principal.username
        )
    return IncidentPublic.of(incident)


@router.get("/incidents/{incident_id}", summary="One incident with its missions and recommended drones")
def get_incident(runtime: RuntimeDep, _: AnyUser, incident_id: IncidentId) -> dict[str, Any]:
    view = runtime.dispatcher.incident_view(runtime.store.get_incident(incident_id))
    for e in view["evidence"]:
        e["url"] = evidence_url(e["id"])
    view["reports"] = [r.model_dump(mode="json") for r in runtime.store.incident_reports(incident_id)]
    return view


@router.post(
    "/incidents/{incident_id}/dispatch",
    response_model=MissionPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Send a drone: the recommended one, or the one named",
)
async def dispatch(
    runtime: RuntimeDep, principal: Operator, incident_id: IncidentId, body: DispatchRequest | None = None
) -> MissionPublic:
    mission = await runtime.dispatcher.dispatch(incident_id, body or DispatchRequest(), principal.username)
    return runtime.missions.public(mission)


@router.post("/incidents/{incident_id}/close", response_model=IncidentPublic, summary="Close with an outcome")
def close(
    runtime: RuntimeDep, principal: Operator, incident_id: IncidentId, body: CloseRequest | None = None
) -> IncidentPublic:
    req = body or CloseRequest()
    closed = runtime.dispatcher.close_incident(
        incident_id, req.outcome, principal.username, outcome_code=req.outcome_code, first_on_scene=req.first_on_scene
    )
    return IncidentPublic.of(closed)
