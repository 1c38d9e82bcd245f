from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from dronedispatch.api.deps import RuntimeDep, Tester
from dronedispatch.store.repo import as_utc

router = APIRouter(tags=["audit"])


class AuditPublic(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    detail: dict[str, Any]


@router.get(
    "/audit", response_model=list[AuditPublic], summary="The append-only audit log, newest first (tester, admin)"
)
def audit(
    runtime: RuntimeDep,
    _: Tester,
    target_type: str | None = Query(default=None, max_length=32, description="incident, mission, evidence, user …"),
    target_id: str | None = Query(default=None, max_length=64),
    limit: int = Query(default=200, ge=1, le=5000),
) -> list[AuditPublic]:
    entries = runtime.store.audit_log(target_type=target_type, target_id=target_id, limit=limit)
    return [
        AuditPublic(
            id=e.id or 0,
            at=as_utc(e.at),
            actor=e.actor,
            action=e.action,
            target_type=e.target_type,
            target_id=e.target_id,
            detail=e.detail,
        )
        for e in entries
    ]
