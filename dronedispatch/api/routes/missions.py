from __future__ import annotations

from fastapi import APIRouter, Query

from dronedispatch.api.access import MissionId, ScopeDep
from dronedispatch.api.deps import AnyUser, Limit, Offset, Pilot, RuntimeDep
from dronedispatch.domain.mission_items import MissionItem
from dronedispatch.domain.qgc_plan import to_plan
from dronedispatch.schemas import MissionCommand, MissionPublic

router = APIRouter(tags=["missions"])


@router.get("/missions", response_model=list[MissionPublic], summary="List missions, newest first")
def list_missions(
    runtime: RuntimeDep,
    _: AnyUser,
    scope: ScopeDep,
    active: bool | None = None,
    incident_id: int | None = Query(default=None, ge=1, le=2**63 - 1),
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[MissionPublic]:
    missions = runtime.store.list_missions(
        active=active, incident_id=incident_id, limit=limit, offset=offset, district=scope.district
    )
    return [runtime.missions.public(m) for m in missions]


@router.get("/missions/{mission_id}", response_model=MissionPublic, summary="One mission")
def get_mission(runtime: RuntimeDep, _: AnyUser, mission_id: MissionId) -> MissionPublic:
    return runtime.missions.public(runtime.store.get_mission(mission_id))


@router.post("/missions/{mission_id}/commands", response_model=MissionPublic, summary="Pilot command")
async def command(runtime: RuntimeDep, principal: Pilot, mission_id: MissionId, body: MissionCommand) -> MissionPublic:
    m = await runtime.missions.command(mission_id, body.command, principal.username, position=body.position)
    return runtime.missions.public(m)


@router.get("/missions/{mission_id}/plan", summary="The mission as a QGroundControl .plan file")
def plan(runtime: RuntimeDep, _: AnyUser, mission_id: MissionId) -> dict:
    m = runtime.store.get_mission(mission_id)
    entry = runtime.registry.get(m.drone_id)
    home = (entry.dock.lat, entry.dock.lon, entry.dock.alt) if entry else (m.items[0]["lat"], m.items[0]["lon"], 0.0)
    return to_plan([MissionItem.from_dict(d) for d in m.items], home=home)
