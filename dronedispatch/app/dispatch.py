"""Dispatch: incidents in, a chosen drone and a checked mission out.

The application service behind the incident routes. It gathers snapshots (drones, airspace,
templates), asks the pure planner, records the decision and hands the mission to the
:class:`~dronedispatch.app.missions.MissionSupervisor` to fly. Every refusal is a typed
:class:`~dronedispatch.app.errors.ServiceError` with a reason a person can read.

The database, not this process, keeps two missions off one drone or one incident: the store
refuses a second active mission (partial unique indexes), and a dispatch that loses that race is
refused with the reason. Planning and every store call run in a worker thread, never on the loop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from dronedispatch.app.errors import DispatchRefused, ImpossibleMission
from dronedispatch.app.fleet import Fleet
from dronedispatch.app.missions import MissionSupervisor
from dronedispatch.app.ports import DispatchStore
from dronedispatch.bus import Publisher
from dronedispatch.domain import assignment, launch, planning, qgc_plan, readiness, templates
from dronedispatch.domain.airspace import Airspace
from dronedispatch.domain.assets import AssetRegistry
from dronedispatch.domain.districts import DistrictIndex
from dronedispatch.domain.docks import DockState, Weather
from dronedispatch.domain.fleet import DroneState
from dronedispatch.domain.geo import distance_m
from dronedispatch.domain.incidents import (
    Category,
    IncidentStatus,
    LocationError,
    OpenIncident,
    Report,
    Severity,
    locate_report,
    match_report,
)
from dronedispatch.domain.mission_items import Cmd, MissionItem
from dronedispatch.domain.planning import DroneStatus, NoRoute
from dronedispatch.events import IncidentChanged
from dronedispatch.schemas import DispatchRequest, IncidentCreate, IncidentPublic, MissionPublic
from dronedispatch.store.models import Incident, Mission
from dronedispatch.store.repo import ActiveMissionConflict, as_utc

log = logging.getLogger(__name__)


#: Template name recorded for a mission that came from a QGroundControl .plan file.
IMPORTED_PLAN = "qgc_plan"
#: An imported plan's item this close to the incident is where the scene starts, metres.
SCENE_RADIUS_M = 150.0

#: Time on scene the energy check assumes for a hover that lasts until the pilot ends it.
HOLD_PLANNING_S = 600.0


class DockStates(Protocol):
    """The docks' live states (:class:`dronedispatch.app.docks.DockService`): None for a dock not heard."""

    def state(self, dock_id: str) -> DockState | None: ...


class NoDocks:
    """Docks that are not devices: never heard, so judged as before (battery and state only)."""

    def state(self, dock_id: str) -> DockState | None:
        return None


@dataclass(frozen=True)
class PlannedDispatch:
    """A dispatch decided and checked, not yet recorded."""

    mission: Mission
    return_seq: int | None
    preempt_mission_id: int | None
    audit_detail: dict[str, Any]


class DispatchService:
    def __init__(
        self,
        store: DispatchStore,
        publisher: Publisher,
        fleet: Fleet,
        missions: MissionSupervisor,
        *,
        airspace: Airspace,
        cameras: AssetRegistry,
        mission_templates: dict[str, templates.MissionTemplate],
        max_auto_eta_s: float,
        districts: DistrictIndex | None = None,
        docks: DockStates | None = None,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._fleet = fleet
        self._missions = missions
        self._airspace = airspace
        self._cameras = cameras
        self._templates = mission_templates
        self._max_auto_eta_s = max_auto_eta_s
        self._districts = districts
        self._docks: DockStates = docks or NoDocks()

    # -- incidents -----------------------------------------------------------------------------
    @staticmethod
    def report_of(body: IncidentCreate, source: str = "operator") -> Report:
        """An operator's new incident as the report it is stored from."""
        return Report(
            source=source,
            category=body.category,
            severity=body.severity,
            lat=body.location.lat if body.location else None,
            lon=body.location.lon if body.location else None,
            camera_id=body.camera_id,
            observed_at=datetime.now(UTC),
            description=body.description,
        )

    def create_incident(self, body: IncidentCreate, actor: str, source: str = "operator") -> Incident:
        incident = self.ingest_report(self.report_of(body, source), actor=actor)
        if body.approval_ref and incident.approval_ref != body.approval_ref:
            assert incident.id is not None
            incident = self._store.update_incident(incident.id, approval_ref=body.approval_ref)
        return incident

    def ingest_report(self, report: Report, *, actor: str) -> Incident:
        """Store a report: merged into the open incident of the same event, or as a new incident."""
        try:
            located = locate_report(report, self._cameras)
        except LocationError as exc:
            raise ImpossibleMission(str(exc), "no_location") from exc
        assert located.lat is not None and located.lon is not None
        decision = match_report(located, self._open_incidents())
        store = self._store
        if decision.duplicate:
            incident = store.get_incident(decision.incident_id)
            store.audit(actor, "incident.duplicate", "incident", decision.incident_id, reason=decision.reason)
            return incident
        if decision.is_new:
            district = self._districts.district_at(located.lat, located.lon) if self._districts else None
            incident = store.create_incident(located, located.lat, located.lon, district=district)
            store.audit(
                actor,
                "incident.create",
                "incident",
                incident.id,
                source=report.source,
                category=report.category.value,
                lat=located.lat,
                lon=located.lon,
            )
        else:
            incident = store.merge_report(decision.incident_id, located)
            store.audit(
                actor, "incident.merge", "incident", decision.incident_id, reason=decision.reason, source=report.source,
                distance_m=decision.distance_m,
            )  # fmt: skip
        self._publish(incident)
        return incident

    def _open_incidents(self) -> list[OpenIncident]:
        out = []
        for inc, reports in self._store.open_incidents_with_reports():
            seen = [as_utc(r.observed_at) for r in reports] or [as_utc(inc.created_at)]
            out.append(
                OpenIncident(
                    id=inc.id,
                    category=Category(inc.category),
                    lat=inc.lat,
                    lon=inc.lon,
                    first_seen=min(seen),
                    last_seen=max(seen),
                    severity=Severity(inc.severity),
                    status=IncidentStatus(inc.status),
                    camera_ids=frozenset(r.camera_id for r in reports if r.camera_id),
                    source_refs=frozenset((r.source, r.source_ref) for r in reports if r.source_ref),
                    report_count=inc.report_count,
                )
            )
        return out

    def close_incident(
        self,
        incident_id: int,
        outcome: str,
        actor: str,
        *,
        outcome_code: str | None = None,
        first_on_scene: str | None = None,
    ) -> Incident:
        """Close with the free-text outcome and, for the statistics, its code and who was first on scene."""
        incident = self._store.get_incident(incident_id)
        if incident.status == IncidentStatus.CLOSED:
            raise DispatchRefused(f"incident {incident_id} is already closed", "already_closed")
        incident = self._store.update_incident(
            incident_id, status=IncidentStatus.CLOSED.value, outcome=outcome, closed_at=datetime.now(UTC),
            outcome_code=outcome_code, first_on_scene=first_on_scene,
        )  # fmt: skip
        self._store.audit(
            actor, "incident.close", "incident", incident_id, outcome=outcome, outcome_code=outcome_code,
            first_on_scene=first_on_scene,
        )  # fmt: skip
        self._publish(incident)
        return incident

    # -- recommendation ------------------------------------------------------------------------
    def drone_statuses(self, scene: tuple[float, float] | None = None) -> list[DroneStatus]:
        """Every drone as the planner needs it, each judged ready or not (its dock, its launch
        threshold, the weather at its dock and, with ``scene``, at the station nearest the scene)."""
        out = []
        now = datetime.now(UTC)
        scene_weather = self.scene_weather(*scene, now=now) if scene is not None else None
        for entry in self._fleet.registry:
            pub = self._fleet.registry.public(entry)
            pos = pub.position
            state = DroneState(pub.state)
            block = None
            # the door term of its launch: the opening time its dock reported, else the fleet file's delay
            dock_state = self._docks.state(entry.dock.id)
            door_open_s = dock_state.door_open_s if dock_state is not None else None
            if state in readiness.JUDGED:
                judged = readiness.assess(
                    drone_id=entry.spec.id, state=state, battery_pct=pub.battery,
                    limits=readiness.Limits.of(entry.spec), dock=dock_state, now=now,
                    scene_weather=scene_weather,
                )  # fmt: skip
                # a drone over its own launch threshold is ready even where the fleet-wide default says charging
                state, block = (DroneState.READY, None) if judged.ready else (state, judged.reason)
            out.append(
                DroneStatus(
                    drone_id=entry.spec.id,
                    sysid=entry.spec.sysid,
                    state=state,
                    lat=pos.lat if pos else entry.dock.lat,
                    lon=pos.lon if pos else entry.dock.lon,
                    alt=(pos.alt or 0.0) if pos else 0.0,
                    battery_pct=pub.battery,
                    cruise_speed=entry.spec.cruise_speed,
                    launch_delay_s=launch.door_s(door_open_s, entry.spec.launch_delay_s),
                    capabilities=tuple(entry.spec.capabilities),
                    endurance_min=entry.spec.endurance_min,
                    dock_lat=entry.dock.lat,
                    dock_lon=entry.dock.lon,
                    climb_speed=entry.spec.climb_speed,
                    max_wind=entry.spec.max_wind,
                    obstacle_height_m=entry.dock.obstacle_height_m,
                    launch_block=block,
                )
            )
        return out

    def scene_weather(self, lat: float, lon: float, *, now: datetime) -> Weather | None:
        """The weather at the station nearest (``lat``, ``lon``): the nearest dock with a fresh state and a
        weather station; None when no dock reports weather."""
        reports = []
        for d in self._fleet.registry.fleet.docks:
            s = self._docks.state(d.id)
            if s is not None and s.weather is not None and s.fresh(now):
                reports.append((distance_m(d.lat, d.lon, lat, lon), s.weather))
        return min(reports, key=lambda r: r[0])[1] if reports else None

    def template(self, category: str, name: str | None) -> templates.MissionTemplate:
        if name is None:
            return templates.template_for(category, self._templates)
        tpl = self._templates.get(name)
        if tpl is None:
            raise templates.TemplateError(f"unknown template {name!r} (known: {', '.join(sorted(self._templates))})")
        if Category(category) not in tpl.categories:
            raise templates.TemplateError(f"template {name!r} does not suit a {category} incident")
        return tpl

    def recommend(
        self,
        incident: Incident,
        template: str | None = None,
        *,
        params: dict[str, Any] | None = None,
        flying_as_ready: str | None = None,
    ) -> list[planning.Candidate]:
        """Every drone for ``incident``, best first, for the template with ``params`` (its defaults
        otherwise). ``flying_as_ready`` names a drone in flight that a person has chosen to pre-empt:
        it is considered from where it is, as if it were ready."""
        tpl = self.template(incident.category, template)
        params = templates.resolve_params(tpl, incident.category, params)
        if "time_on_scene_s" in params:  # 0 holds until the pilot sends it back: plan for a typical stay
            scene_s = params["time_on_scene_s"] or HOLD_PLANNING_S
        else:  # search patterns: as long as the pattern takes
            scene_s = templates.estimated_scene_time_s(
                tpl, incident.category, params, target=(incident.lat, incident.lon)
            )
        return planning.recommend(
            incident.lat,
            incident.lon,
            Category(incident.category),
            [
                replace(d, state=DroneState.READY, launch_delay_s=0.0, launch_block=None)
                if d.drone_id == flying_as_ready
                else d
                for d in self.drone_statuses(scene=(incident.lat, incident.lon))
            ],
            self._airspace,
            time_on_scene_s=float(scene_s),
            cruise_alt_m=float(params.get("altitude_m", planning.DEFAULT_CRUISE_ALT_M)),
        )

    # -- dispatch ------------------------------------------------------------------------------
    async def dispatch(self, incident_id: int, req: DispatchRequest, actor: str) -> Mission:
        """Send a drone to ``incident_id``: the plan's or the named one. Returns the mission once
        recorded; the upload and launch go on in the background (follow the mission's state)."""
        planned = await asyncio.to_thread(self._plan_dispatch, incident_id, req, actor)
        if planned.preempt_mission_id is not None:
            await self._missions.preempt(planned.preempt_mission_id, incident_id, actor)
        try:
            mission, incident = await asyncio.to_thread(
                self._store.dispatch_mission, planned.mission, actor=actor, audit_detail=planned.audit_detail
            )
        except ActiveMissionConflict as exc:
            # another dispatch won the race for this drone or incident between our check and our write
            if exc.kind == "incident":
                raise DispatchRefused(
                    f"incident {incident_id} already has a mission in progress", "already_dispatched"
                ) from exc
            raise DispatchRefused(
                f"drone {planned.mission.drone_id} was just sent on another mission; dispatch again for the next "
                "best drone",
                "drone_busy",
            ) from exc
        self._publish(incident)
        self._missions.launch(mission, return_seq=planned.return_seq)
        return mission

    def _plan_dispatch(self, incident_id: int, req: DispatchRequest, actor: str) -> PlannedDispatch:
        """Choose the drone, compile and check the mission (blocking: store reads and planning)."""
        incident = self._store.get_incident(incident_id)
        if incident.status == IncidentStatus.CLOSED:
            raise DispatchRefused(f"incident {incident_id} is closed", "incident_closed")
        if self._store.list_missions(active=True, incident_id=incident_id):
            raise DispatchRefused(f"incident {incident_id} already has a mission in progress", "already_dispatched")
        if req.approval_ref:
            incident = self._store.update_incident(incident_id, approval_ref=req.approval_ref)
        try:
            tpl = self.template(incident.category, req.template)
            params = templates.resolve_params(tpl, incident.category, req.params)
        except templates.TemplateError as exc:
            raise ImpossibleMission(str(exc), "bad_template") from exc

        preempted: Mission | None = None
        if req.drone_id is not None:
            self._fleet.entry(req.drone_id)  # unknown drone: UnknownObject
            if req.preempt:
                preempted = self._store.active_mission_for_drone(req.drone_id)
                if preempted is None:
                    raise DispatchRefused(f"drone {req.drone_id} flies no mission", "nothing_to_preempt")
            candidates = self.recommend(
                incident, tpl.name, params=req.params, flying_as_ready=req.drone_id if req.preempt else None
            )
            chosen = next((c for c in candidates if c.drone_id == req.drone_id), None)
            if chosen is None or not chosen.eligible:
                why = chosen.reason.en if chosen else "not considered"
                raise DispatchRefused(f"drone {req.drone_id} cannot go: {why}", "drone_not_eligible")
        else:
            candidates = self.recommend(incident, tpl.name, params=req.params)
            planned = self._planned_drone(incident_id)
            chosen = next((c for c in candidates if c.eligible and c.drone_id == planned), None) or next(
                (c for c in candidates if c.eligible), None
            )
            if chosen is None:
                reasons = "; ".join(f"{c.drone_id}: {c.reason.en}" for c in candidates) or "no drones in the fleet"
                raise DispatchRefused(f"no drone can answer this incident ({reasons})", "no_drone")
            limit = self._max_auto_eta_s
            if chosen.eta_s is not None and chosen.eta_s > limit:
                # a drone from across the city would be gone for long; a local one may free up sooner
                raise DispatchRefused(
                    f"the nearest free drone, {chosen.drone_id}, needs {chosen.eta_s / 60:.0f} min, more than "
                    f"{limit / 60:.0f} min: send it by naming it, or wait for a closer one",
                    "too_far",
                )
        entry = self._fleet.entry(chosen.drone_id)
        dock = (entry.dock.lat, entry.dock.lon)
        if req.plan is not None:
            items, on_scene_seq, return_seq = self._imported(req.plan, incident)
            template_name = IMPORTED_PLAN
        else:
            try:
                # a pre-empted drone starts from where it flies; the route comes from there
                start = chosen.route[0] if chosen.route else dock
                route = (
                    list(chosen.route) if chosen.route else self._airspace.route(start, (incident.lat, incident.lon))
                )
                compiled = templates.compile_mission(
                    tpl,
                    params,
                    dock=(*start, 0.0),  # the take-off item: where the drone is (its dock, unless it flies)
                    target=(incident.lat, incident.lon),
                    route=route,
                    area=incident.area,
                    category=incident.category,
                    cruise_speed=entry.spec.cruise_speed,
                    airspace=self._airspace,
                    climb_rate_m_s=entry.spec.climb_speed,  # the way out climbs at this rate while flying
                    obstacle_height_m=entry.dock.obstacle_height_m,  # None: the airspace's, else the default
                    airborne=preempted is not None,  # a pre-empted drone is up already: no take-off climb
                )
            except NoRoute as exc:
                raise ImpossibleMission(exc.reason, "no_route") from exc
            except templates.TemplateError as exc:
                raise ImpossibleMission(str(exc), "bad_template") from exc
            items, on_scene_seq, return_seq = list(compiled.items), compiled.on_scene_seq, compiled.return_seq
            template_name = tpl.name
        approvals = (
            {z.id: incident.approval_ref for z in self._airspace.zones if z.rule == "approval"}
            if incident.approval_ref
            else {}
        )
        check = self._airspace.check_mission(items, home=dock, approvals=approvals)
        if not check.ok:
            raise ImpossibleMission(check.summary, "airspace")
        mission = Mission(
            incident_id=incident_id,
            drone_id=chosen.drone_id,
            sysid=chosen.sysid,
            template=template_name,
            params=params if req.plan is None else {},
            items=[it.to_dict(i) for i, it in enumerate(items)],
            on_scene_seq=on_scene_seq,
            airspace_check=check.as_dict(),
            created_by=actor,
        )
        detail = {
            "incident_id": incident_id,
            "drone_id": chosen.drone_id,
            "template": tpl.name,
            "eta_s": chosen.eta_s,
            "reason": chosen.reason.en,
            "airspace": check.as_dict(),
        }
        return PlannedDispatch(mission, return_seq, preempted.id if preempted else None, detail)

    @staticmethod
    def _imported(plan: dict[str, Any], incident: Incident) -> tuple[list[MissionItem], int, int | None]:
        """Items of a QGroundControl plan, with where the scene starts: the first item flown to
        within :data:`SCENE_RADIUS_M` of the incident (else the last place flown to)."""
        try:
            imported = qgc_plan.from_plan(plan)
        except qgc_plan.PlanFormatError as exc:
            raise ImpossibleMission(f"plan: {exc}", "bad_plan") from exc
        items = list(imported.items)
        flown = [i for i, it in enumerate(items) if it.is_positional and it.command != Cmd.DO_SET_ROI_LOCATION]
        if not flown:
            raise ImpossibleMission("plan: it flies nowhere (no positional item)", "bad_plan")
        near = [
            i for i in flown if distance_m(items[i].lat, items[i].lon, incident.lat, incident.lon) <= SCENE_RADIUS_M
        ]
        on_scene_seq = near[0] if near else flown[-1]
        return_seq = next((i for i, it in enumerate(items) if it.command == Cmd.NAV_RETURN_TO_LAUNCH), None)
        return items, max(on_scene_seq, 1), return_seq

    def _planned_drone(self, incident_id: int) -> str | None:
        """The fleet-wide plan's drone for this incident, when other incidents also wait for one
        (alone, the plan is the recommendation itself, and computing it again costs a planning round)."""
        waiting = self._waiting()
        if not waiting or [i.id for i in waiting] == [incident_id]:
            return None
        return self.assignment_plan(waiting).drone_for(incident_id)

    def _waiting(self) -> list[Incident]:
        return [i for i in self._store.open_incidents() if i.status == IncidentStatus.OPEN]

    def assignment_plan(self, waiting: list[Incident] | None = None) -> assignment.AssignmentPlan:
        """The fleet-wide plan for every incident still waiting (pure planner, current snapshots);
        ``waiting`` when the caller has just read them."""
        if waiting is None:
            waiting = self._waiting()
        requests = []
        for i in waiting:
            assert i.id is not None
            tpl = self.template(i.category, None)
            params = templates.resolve_params(tpl, i.category)
            requests.append(
                assignment.IncidentRequest(
                    i.id,
                    i.lat,
                    i.lon,
                    Category(i.category),
                    Severity(i.severity),
                    as_utc(i.created_at),
                    time_on_scene_s=float(params.get("time_on_scene_s") or HOLD_PLANNING_S),
                )
            )
        busy: dict[str, tuple[object, float]] = {}
        for m in self._store.list_missions(active=True, limit=10_000):
            inc = self._store.get_incident(m.incident_id)
            busy[m.drone_id] = (inc.id, assignment.priority(inc.category, inc.severity))
        return assignment.plan(datetime.now(UTC), self.drone_statuses(), requests, self._airspace, busy=busy)

    def _publish(self, incident: Incident) -> None:
        self._publisher.publish(IncidentChanged(data=IncidentPublic.of(incident)))

    def incident_view(self, incident: Incident) -> dict[str, Any]:
        """An incident with its recommendation (while open) and missions, for the incident card."""
        assert incident.id is not None
        view = IncidentPublic.of(incident).model_dump(mode="json")
        view["evidence"] = [
            {"id": e.id, "kind": e.kind, "mission_id": e.mission_id}
            for e in self._store.list_evidence(incident_id=incident.id)
        ]
        view["missions"] = [
            MissionPublic.of(m).model_dump(mode="json")
            for m in self._store.list_missions(incident_id=incident.id, limit=10)
        ]
        if incident.status == IncidentStatus.OPEN:
            try:
                view["recommendation"] = [c.as_dict() for c in self.recommend(incident)]
            except (templates.TemplateError, NoRoute) as exc:
                view["recommendation"] = []
                view["recommendation_error"] = str(exc)
        return view
