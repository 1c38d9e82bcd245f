from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from dronedispatch.api.access import ScopeDep
from dronedispatch.api.deps import AnyUser, RuntimeDep

router = APIRouter(tags=["incidents"])


@router.get("/assignments", summary="Fleet-wide plan for the incidents still waiting, with pre-emption proposals")
def assignments(runtime: RuntimeDep, _: AnyUser, scope: ScopeDep) -> dict[str, Any]:
    plan = runtime.dispatcher.assignment_plan()
    # a district account sees the plan for its district's incidents (drones may come from anywhere)
    ours = runtime.access.visible_incidents(
        scope, [a.incident_id for a in plan.assignments] + [u.incident_id for u in plan.unassigned]
        + [p.to_incident for p in plan.preemptions]
    )  # fmt: skip
    return {
        "at": plan.now.isoformat(),
        "assignments": [
            {"incident_id": a.incident_id, "drone_id": a.drone_id, "eta_s": round(a.eta_s, 1),
             "priority": round(a.priority, 2), "reason": a.candidate.reason.as_dict()}
            for a in plan.assignments if a.incident_id in ours
        ],
        "unassigned": [
            {"incident_id": u.incident_id, "priority": round(u.priority, 2), "reason": u.reason}
            for u in plan.unassigned if u.incident_id in ours
        ],
        "preemptions": [
            {"drone_id": p.drone_id, "from_incident": p.from_incident, "to_incident": p.to_incident,
             "eta_s": round(p.eta_s, 1), "reason": p.reason, "needs_confirmation": True}
            for p in plan.preemptions if p.to_incident in ours
        ],
    }  # fmt: skip
