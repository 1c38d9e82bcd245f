"""Per-district access for the routers: the caller's :class:`Scope`, and path ids checked against it.

A route that takes an object's id declares it with one of the aliases below (``IncidentId``,
``MissionId`` …) instead of a bare ``DbId``/``str``: the id is checked against the caller's district
before the route runs, and an object of another district answers 404 as if it did not exist. The
rule itself lives in :mod:`dronedispatch.app.access`; tests/api/test_district_access.py fails when
a route takes an id without one of these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends
from fastapi import Path as PathParam

from dronedispatch.api.deps import DbId, PrincipalDep, RuntimeDep
from dronedispatch.app.access import Scope


def scope_of(principal: PrincipalDep) -> Scope:
    return Scope(principal.district)


ScopeDep = Annotated[Scope, Depends(scope_of)]
#: A drone's, camera's or share link's id in a path.
NameId = Annotated[str, PathParam(max_length=64)]


def _incident_id(runtime: RuntimeDep, scope: ScopeDep, incident_id: DbId) -> int:
    runtime.access.incident(scope, incident_id)
    return incident_id


def _mission_id(runtime: RuntimeDep, scope: ScopeDep, mission_id: DbId) -> int:
    runtime.access.mission(scope, mission_id)
    return mission_id


def _evidence_id(runtime: RuntimeDep, scope: ScopeDep, evidence_id: DbId) -> int:
    runtime.access.evidence(scope, evidence_id)
    return evidence_id


def _drone_id(runtime: RuntimeDep, scope: ScopeDep, drone_id: NameId) -> str:
    runtime.access.drone(scope, drone_id)
    return drone_id


def _camera_id(runtime: RuntimeDep, scope: ScopeDep, camera_id: NameId) -> str:
    runtime.access.camera(scope, camera_id)
    return camera_id


def _share_id(runtime: RuntimeDep, scope: ScopeDep, share_id: Annotated[str, PathParam(max_length=32)]) -> str:
    runtime.access.share(scope, share_id)
    return share_id


IncidentId = Annotated[int, Depends(_incident_id)]
MissionId = Annotated[int, Depends(_mission_id)]
EvidenceId = Annotated[int, Depends(_evidence_id)]
DroneId = Annotated[str, Depends(_drone_id)]
CameraId = Annotated[str, Depends(_camera_id)]
ShareId = Annotated[str, Depends(_share_id)]

#: The path parameter each check reads (the test of every route matches them by name).
CHECKS: dict[str, Callable[..., Any]] = {
    "incident_id": _incident_id,
    "mission_id": _mission_id,
    "evidence_id": _evidence_id,
    "drone_id": _drone_id,
    "camera_id": _camera_id,
    "share_id": _share_id,
}
