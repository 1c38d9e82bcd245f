"""Several incidents at once: which ready drone answers which incident.

``plan(now, drones, incidents, airspace)`` is a pure function. It builds a cost matrix of
priority-weighted response times (ETA from :func:`~dronedispatch.domain.planning.recommend`,
including its energy and airspace checks) and solves it with the Hungarian method
(``scipy.optimize.linear_sum_assignment``). Every incident also has its own "unserved" column
costing ``priority × UNSERVED_S``, so with more incidents than drones the solver leaves the
least urgent ones waiting rather than the most urgent.

Re-planning is calling ``plan`` again when a drone frees up or an incident arrives, with the
incidents not yet dispatched and the drones now ready. Drones already flying a mission are never
taken from it here: when one of them would reach a more urgent unserved incident, the plan carries
a :class:`Preemption` proposal that a person must confirm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
from scipy.optimize import linear_sum_assignment

from dronedispatch.domain.fleet import DroneState
from dronedispatch.domain.incidents import Category, Severity
from dronedispatch.domain.planning import Candidate, DroneStatus, RoutePlanner, recommend

#: Response time charged for leaving an incident unserved in this round, seconds.
UNSERVED_S = 3600.0
_INFEASIBLE = 1e12

SEVERITY_WEIGHT: dict[Severity, float] = {
    Severity.MINOR: 1.0,
    Severity.MODERATE: 2.0,
    Severity.SEVERE: 4.0,
    Severity.EXTREME: 8.0,
}
CATEGORY_WEIGHT: dict[Category, float] = {
    Category.FIRE: 1.5,
    Category.MISSING_PERSON: 1.3,
    Category.CRIME: 1.3,
    Category.TRAFFIC_ACCIDENT: 1.2,
    Category.FLOOD: 1.2,
}
#: An incident's priority grows by this fraction per minute it has waited (so none starves).
AGING_PER_MIN = 0.02


def priority(category: Category | str, severity: Severity | int, waited_s: float = 0.0) -> float:
    base = SEVERITY_WEIGHT[Severity(severity)] * CATEGORY_WEIGHT.get(Category(category), 1.0)
    return base * (1.0 + AGING_PER_MIN * max(0.0, waited_s) / 60.0)


@dataclass(frozen=True, slots=True)
class IncidentRequest:
    incident_id: object
    lat: float
    lon: float
    category: Category
    severity: Severity
    opened_at: datetime
    time_on_scene_s: float = 600.0


@dataclass(frozen=True, slots=True)
class Assignment:
    incident_id: object
    drone_id: str
    eta_s: float
    priority: float
    candidate: Candidate


@dataclass(frozen=True, slots=True)
class Unassigned:
    incident_id: object
    priority: float
    reason: str


@dataclass(frozen=True, slots=True)
class Preemption:
    """A flying drone that could serve a more urgent incident: needs a person's confirmation."""

    drone_id: str
    from_incident: object
    to_incident: object
    eta_s: float
    reason: str


@dataclass(frozen=True)
class AssignmentPlan:
    now: datetime
    assignments: tuple[Assignment, ...]
    unassigned: tuple[Unassigned, ...]
    preemptions: tuple[Preemption, ...]
    cost: float  # sum of priority × response time (unserved charged UNSERVED_S)
    candidates: Mapping[object, tuple[Candidate, ...]]  # per incident, for the "why" view

    def drone_for(self, incident_id: object) -> str | None:
        return next((a.drone_id for a in self.assignments if a.incident_id == incident_id), None)


def plan(
    now: datetime,
    drones: Sequence[DroneStatus],
    incidents: Sequence[IncidentRequest],
    airspace: RoutePlanner | None = None,
    *,
    busy: Mapping[str, tuple[object, float]] | None = None,
    preempt_gain: float = 2.0,
) -> AssignmentPlan:
    """Assign ready drones to incidents minimising priority-weighted response time.

    ``busy`` maps the id of a drone flying a mission → (the incident it serves, that incident's
    priority); those drones (state in_mission, position their current one) are only considered
    for :class:`Preemption` proposals, for an unserved incident at least ``preempt_gain`` times
    as urgent as the one they serve.
    """
    busy = busy or {}
    ready = [d for d in drones if d.state == DroneState.READY]
    prios = [priority(i.category, i.severity, (now - i.opened_at).total_seconds()) for i in incidents]
    per_incident: dict[object, tuple[Candidate, ...]] = {}
    n_i, n_d = len(incidents), len(ready)
    cost = np.full((n_i, n_d + n_i), _INFEASIBLE)
    cand_at: dict[tuple[int, int], Candidate] = {}
    index = {d.drone_id: k for k, d in enumerate(ready)}
    for r, inc in enumerate(incidents):
        cands = recommend(inc.lat, inc.lon, inc.category, drones, airspace, time_on_scene_s=inc.time_on_scene_s)
        per_incident[inc.incident_id] = tuple(cands)
        for c in cands:
            if c.eligible and c.drone_id in index and c.eta_s is not None:
                k = index[c.drone_id]
                cost[r, k] = prios[r] * c.eta_s
                cand_at[(r, k)] = c
        cost[r, n_d + r] = prios[r] * UNSERVED_S
    assignments: list[Assignment] = []
    unassigned: list[Unassigned] = []
    total = 0.0
    if n_i:
        rows, cols = linear_sum_assignment(cost)
        for r, k in zip(rows, cols, strict=True):
            inc = incidents[r]
            total += float(cost[r, k])
            if k < n_d:
                c = cand_at[(r, k)]
                assignments.append(Assignment(inc.incident_id, c.drone_id, c.eta_s or 0.0, prios[r], c))
            else:
                unassigned.append(Unassigned(inc.incident_id, prios[r], _why_unserved(per_incident[inc.incident_id],
                                                                                     index)))
    assignments.sort(key=lambda a: -a.priority)
    unassigned.sort(key=lambda u: -u.priority)
    preemptions = _preemptions(incidents, prios, unassigned, drones, busy, airspace, preempt_gain)
    return AssignmentPlan(now, tuple(assignments), tuple(unassigned), tuple(preemptions), total, per_incident)


def _why_unserved(cands: Sequence[Candidate], ready_index: Mapping[str, int]) -> str:
    eligible = [c for c in cands if c.eligible]
    if eligible:
        return "every suitable drone is assigned to a more urgent incident"
    if not cands:
        return "no drones in the fleet"
    reasons = sorted({c.reason.en for c in cands})
    return "no drone can go: " + "; ".join(reasons[:4]) + ("; …" if len(reasons) > 4 else "")


def _preemptions(
    incidents: Sequence[IncidentRequest],
    prios: Sequence[float],
    unassigned: Sequence[Unassigned],
    drones: Sequence[DroneStatus],
    busy: Mapping[str, tuple[object, float]],
    airspace: RoutePlanner | None,
    gain: float,
) -> list[Preemption]:
    out: list[Preemption] = []
    taken: set[str] = set()
    by_id = {i.incident_id: (i, p) for i, p in zip(incidents, prios, strict=True)}
    flying = [
        replace(d, state=DroneState.READY, launch_delay_s=0.0)
        for d in drones
        if d.drone_id in busy and d.state in (DroneState.IN_MISSION, DroneState.READY)
    ]
    for u in unassigned:  # most urgent first
        inc, p = by_id[u.incident_id]
        options = [d for d in flying if d.drone_id not in taken and busy[d.drone_id][1] * gain <= p]
        if not options:
            continue
        cands = [c for c in recommend(inc.lat, inc.lon, inc.category, options, airspace,
                                      time_on_scene_s=inc.time_on_scene_s) if c.eligible]
        if not cands:
            continue
        best = cands[0]
        from_incident, from_prio = busy[best.drone_id]
        taken.add(best.drone_id)
        out.append(Preemption(
            best.drone_id, from_incident, inc.incident_id, best.eta_s or 0.0,
            f"{best.drone_id} could leave incident {from_incident} (priority {from_prio:.1f}) for incident "
            f"{inc.incident_id} (priority {p:.1f}), on scene in {(best.eta_s or 0) / 60:.1f} min; "
            "needs confirmation",
        ))
    return out
