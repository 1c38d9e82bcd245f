"""Continuous overwatch: keep an incident's scene covered by relieving its drone before it must leave.

An incident asks for coverage for a duration (counted from the first drone on scene) or until it
is closed (``POST /incidents`` ``coverage``, ``PUT /incidents/{id}/coverage``, or a template's
``coverage_min`` parameter). For each covered incident this service, every ``tick_s`` and on every
mission change, plans the relief with :mod:`dronedispatch.domain.overwatch`:

- the drone on scene must leave when its battery (drained at the faster of its measured and its
  nominal rate) covers only the way home plus its reserve, or when its mission ends by itself;
- the relief is the best drone :meth:`DispatchService.recommend` offers for the same template,
  less the drones the fleet-wide assignment gives to incidents still waiting (they keep their
  priority); it is launched so that it is over the scene ``overlap_s`` before the first must leave,
  with the same template and parameters (same loiter point and region of interest);
- once the relief has been on scene ``overlap_s`` (or the first must leave), the first is sent home
  (RTL), audited as ``mission.handover`` with both missions' ids;
- when no relief can arrive in time, an alert names the predicted gap as soon as it is predicted;
  when the moment comes with no relief on scene, the drone goes home with its reserve all the same
  (audited as ``mission.coverage_leave``; a relief on its way late by less than ``overlap_s`` is waited for).

Coverage ends at its duration or when the incident is closed: every drone of the incident goes home.
Whichever drone covers the scene is ``incidents.on_scene_drone_id`` (for every incident, covered or
not), published with the incident so the operations view's and the pilot panel's video follow it.

Time: relief planning runs on ``clock`` (monotonic seconds). A scenario against a sped-up simulator
gives the simulator's clock (:meth:`use_clock`), so ETAs, drain rates and durations stay in one time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dronedispatch.app.alerts import Alerts
from dronedispatch.app.dispatch import IMPORTED_PLAN, DispatchService
from dronedispatch.app.errors import DispatchRefused, ImpossibleMission, ServiceError
from dronedispatch.app.fleet import Fleet
from dronedispatch.app.missions import MissionSupervisor
from dronedispatch.app.ports import MissionStore
from dronedispatch.bus import Publisher
from dronedispatch.domain import overwatch, planning, templates
from dronedispatch.domain.airspace import Airspace, NoRoute
from dronedispatch.domain.geo import distance_m, path_length_m
from dronedispatch.domain.incidents import IncidentStatus
from dronedispatch.domain.mission_state import TERMINAL, MissionState
from dronedispatch.events import IncidentChanged
from dronedispatch.schemas import IncidentPublic
from dronedispatch.store.models import COVERAGE_MODES, Incident, Mission
from dronedispatch.store.repo import ActiveMissionConflict, as_utc

log = logging.getLogger(__name__)

ACTOR = "overwatch"
#: Time on scene the relief's energy check asks for: enough to be worth a hand-over (a drone just off
#: the charger that could stay a minute would need relieving again at once).
RELIEF_PLANNING_SCENE_S = 300.0
#: A drone this far beyond its pattern's reach (stand-off, orbit radius) is not at the scene yet, metres.
SCENE_REACH_M = 50.0
#: Launches seen to arrive later than their ETA by this much (the worst of the last few) are planned so.
LAUNCH_LAGS_KEPT = 5
#: Relief ETAs are planned this much longer than the model's (upload, arming, accelerating, wind).
ETA_MARGIN = 0.25
#: Seconds (on the planning clock) a hand-over holds beyond ``overlap_s``: the relief's arrival is seen in
#: position reports that come late and a round apart, so the overlap as flown is a little shorter than counted.
HANDOVER_MARGIN_S = 5.0
#: Battery samples kept per drone for the measured drain (one per tick).
DRAIN_SAMPLES = 120
_SENDING_HOME = (MissionState.ON_SCENE, MissionState.ENROUTE, MissionState.LAUNCHING)


@dataclass
class _Cover:
    """What this node knows of one covered incident between ticks."""

    plan: overwatch.ReliefPlan | None = None
    plan_for: int | None = None  # the on-scene mission the plan relieves
    alerted_for: set[int] = field(default_factory=set)  # on-scene missions whose gap was alerted
    relief_failed_for: set[int] = field(default_factory=set)


class OverwatchService:
    def __init__(
        self,
        store: MissionStore,
        publisher: Publisher,
        fleet: Fleet,
        missions: MissionSupervisor,
        dispatcher: DispatchService,
        airspace: Airspace,
        alerts: Alerts,
        *,
        overlap_s: float = overwatch.DEFAULT_OVERLAP_S,
        reserve_pct: float = planning.DEFAULT_RESERVE_PCT,
        tick_s: float = 1.0,
        eta_margin: float = ETA_MARGIN,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._fleet = fleet
        self._missions = missions
        self._dispatcher = dispatcher
        self._airspace = airspace
        self._alerts = alerts
        self.overlap_s = overlap_s
        self.reserve_pct = reserve_pct
        self.tick_s = tick_s
        self.eta_margin = eta_margin
        self._clock: Callable[[], float] = time.monotonic
        self._scale = 1.0  # clock seconds per wall second
        self._covers: dict[int, _Cover] = {}
        self._arrived: dict[int, float] = {}  # mission → when on scene, on the clock
        self._ended: set[int] = set()  # incidents whose coverage this process saw end
        self._near_since: dict[int, float] = {}  # relief mission → when its drone was first seen at the scene
        self._sent_home: set[int] = set()  # missions sent home for their reserve with no relief on scene
        self._leave_due: dict[int, float] = {}  # on-scene mission → when it first had to leave
        # reliefs launched: mission → (when, planned ETA); how much later than planned the last ones arrived
        self._launched: dict[int, tuple[float, float]] = {}
        self._lags: deque[float] = deque(maxlen=LAUNCH_LAGS_KEPT)
        self._battery: dict[str, deque[tuple[float, float]]] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    def use_clock(self, clock: Callable[[], float], *, scale: float = 1.0, tick_s: float | None = None) -> None:
        """Plan on ``clock`` (seconds), which runs ``scale`` times faster than the wall clock."""
        self._clock, self._scale = clock, scale
        if tick_s is not None:
            self.tick_s = tick_s

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="overwatch")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._background) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        failing = False  # a store outage fails every round: one traceback, then one line per round
        while True:
            try:
                await self.tick()
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if failing:
                    log.warning("overwatch: planning round failed again: %s", exc)
                else:
                    log.exception("overwatch: planning round failed")
                failing = True
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick_s)

    # -- mission events (MissionListener) ------------------------------------------------------
    def mission_launched(self, mission: Mission) -> None:
        self._wake.set()

    def mission_state(self, mission: Mission, state: MissionState) -> None:
        if state == MissionState.ON_SCENE and mission.id is not None:
            now = self._arrived.setdefault(mission.id, self._clock())
            if mission.id in self._launched:  # upload, arming, a busy link: the next ETAs count with it
                at, eta = self._launched.pop(mission.id)
                self._lags.append(now - at - eta)
        task = asyncio.create_task(self._scene_changed(mission, state), name=f"overwatch-scene-{mission.id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        self._wake.set()

    async def _scene_changed(self, mission: Mission, state: MissionState) -> None:
        """Keep ``on_scene_drone_id``, ``left_scene_at`` and a template's coverage request up to date."""
        try:
            async with self._lock:
                incident = await asyncio.to_thread(self._scene_record, mission, state)
            if incident is not None:
                self._publisher.publish(IncidentChanged(data=IncidentPublic.of(incident)))
        except Exception:
            log.exception("overwatch: mission %s %s: could not record the drone on scene", mission.id, state)

    def _scene_record(self, mission: Mission, state: MissionState) -> Incident | None:
        """Blocking. The incident when its drone on scene (or its coverage) changed, else None."""
        assert mission.id is not None
        incident = self._store.get_incident(mission.incident_id)
        fields: dict[str, Any] = {}
        now = datetime.now(UTC)
        if state == MissionState.ON_SCENE:
            if incident.on_scene_drone_id is None:  # a relief takes the video over at the hand-over
                fields["on_scene_drone_id"] = mission.drone_id
            coverage_min = float(mission.params.get("coverage_min") or 0.0)
            if incident.coverage_mode == "none" and coverage_min > 0:
                fields.update(coverage_mode="duration", coverage_s=coverage_min * 60.0)
                self._store.audit(ACTOR, "incident.coverage", "incident", incident.id, mode="duration",
                                  duration_s=coverage_min * 60.0, template=mission.template)  # fmt: skip
            if fields.get("coverage_mode", incident.coverage_mode) == "duration" and incident.coverage_until is None:
                seconds = fields.get("coverage_s", incident.coverage_s) or 0.0
                fields["coverage_until"] = now + timedelta(seconds=seconds / self._scale)
        elif state == MissionState.RETURNING or state in TERMINAL:
            if mission.on_scene_at is not None and mission.left_scene_at is None:
                self._store.update_mission(mission.id, left_scene_at=now)
            if incident.on_scene_drone_id == mission.drone_id:
                others = [
                    m for m in self._store.list_missions(active=True, incident_id=incident.id)
                    if m.id != mission.id and m.state == MissionState.ON_SCENE
                ]  # fmt: skip
                fields["on_scene_drone_id"] = others[0].drone_id if others else None
        changed = {k: v for k, v in fields.items() if getattr(incident, k) != v}
        if not changed:
            return None
        assert incident.id is not None
        return self._store.update_incident(incident.id, **changed)

    # -- requests --------------------------------------------------------------------------------
    def request_coverage(self, incident_id: int, mode: str, duration_s: float | None, actor: str) -> Incident:
        """Blocking. Ask for (or end, with ``none``) coverage of an incident."""
        if mode not in COVERAGE_MODES:
            raise ImpossibleMission(f"coverage mode must be one of {', '.join(COVERAGE_MODES)}", "bad_coverage")
        if mode == "duration" and not duration_s:
            raise ImpossibleMission("coverage for a duration needs duration_s", "bad_coverage")
        incident = self._store.get_incident(incident_id)
        if incident.status == IncidentStatus.CLOSED:
            raise DispatchRefused(f"incident {incident_id} is closed", "incident_closed")
        until = None
        if mode == "duration" and incident.on_scene_drone_id is not None:  # already covered: from now
            until = datetime.now(UTC) + timedelta(seconds=float(duration_s or 0.0) / self._scale)
        incident = self._store.update_incident(
            incident_id, coverage_mode=mode, coverage_s=duration_s if mode == "duration" else None,
            coverage_until=until,
        )  # fmt: skip
        self._store.audit(actor, "incident.coverage", "incident", incident_id, mode=mode, duration_s=duration_s)
        self._publisher.publish(IncidentChanged(data=IncidentPublic.of(incident)))
        return incident  # the next round (within tick_s) takes it up

    def coverage(self, incident_id: int) -> dict[str, Any]:
        """Blocking. The incident's coverage: request, drone on scene, the relief plan, the timeline."""
        incident = self._store.get_incident(incident_id)
        missions = sorted(self._store.list_missions(incident_id=incident_id, limit=1000), key=lambda m: m.id or 0)
        now = datetime.now(UTC)
        intervals = [
            overwatch.Interval(
                m.drone_id,
                as_utc(m.on_scene_at).timestamp(),
                _left(m),
                m.id,
            )
            for m in missions
            if m.on_scene_at is not None
        ]
        tl = overwatch.timeline(intervals, now.timestamp())
        view = tl.as_dict()
        for i in view["intervals"]:
            i["start"], i["end"] = _iso(i["start"]), _iso(i["end"])
        for h in view["handovers"]:
            h["at"] = _iso(h["at"])
        for g in view["gaps"]:
            g["start"], g["end"] = _iso(g["start"]), _iso(g["end"])
        cover = self._covers.get(incident_id)
        plan = cover.plan.as_dict() if cover is not None and cover.plan is not None else None
        if plan is not None:  # in seconds of the wall clock, like the rest of the answer; no relief at all: null
            plan = {
                k: (None if math.isinf(v) else v / self._scale) if isinstance(v, float) else v for k, v in plan.items()
            }
        return {
            "incident_id": incident_id,
            "mode": incident.coverage_mode,
            "duration_s": incident.coverage_s,
            "until": incident.coverage_until.isoformat() if incident.coverage_until else None,
            "active": self._covered(incident, now),
            "on_scene_drone_id": incident.on_scene_drone_id,
            "overlap_s": self.overlap_s,
            "plan": plan,
            "missions": [
                {
                    "id": m.id,
                    "drone_id": m.drone_id,
                    "state": m.state,
                    "relieves_mission_id": m.relieves_mission_id,
                    "on_scene_at": _iso_dt(m.on_scene_at),
                    "left_scene_at": _iso_dt(m.left_scene_at),
                }
                for m in missions
            ],
            **view,
        }

    # -- the planning round ----------------------------------------------------------------------
    async def tick(self) -> None:
        async with self._lock:
            now = self._clock()
            self._sample_batteries(now)
            incidents = await asyncio.to_thread(self._covered_incidents)
            for incident, active in incidents:
                assert incident.id is not None
                try:
                    await self._watch(incident, active, now)
                except Exception:
                    log.exception("overwatch: incident %s: planning failed", incident.id)

    def _covered_incidents(self) -> list[tuple[Incident, list[Mission]]]:
        out: list[tuple[Incident, list[Mission]]] = []
        for m in self._store.list_missions(active=True, limit=10_000):
            if any(i.id == m.incident_id for i, _ in out):
                continue
            incident = self._store.get_incident(m.incident_id)
            if incident.coverage_mode != "none":
                out.append((incident, list(self._store.list_missions(active=True, incident_id=m.incident_id))))
        for incident in self._store.open_incidents():  # covered, but nothing flies: a gap to close
            if (
                incident.coverage_mode != "none"
                and incident.id not in self._ended
                and not any(i.id == incident.id for i, _ in out)
            ):
                out.append((incident, []))
        return out

    def _covered(self, incident: Incident, now: datetime) -> bool:
        if incident.coverage_mode == "none" or incident.status == IncidentStatus.CLOSED:
            return False
        return incident.coverage_until is None or as_utc(incident.coverage_until) > now

    async def _watch(self, incident: Incident, active: list[Mission], now: float) -> None:
        assert incident.id is not None
        cover = self._covers.setdefault(incident.id, _Cover())
        if not self._covered(incident, datetime.now(UTC)):
            if incident.coverage_until is not None or incident.status == IncidentStatus.CLOSED:
                await self._end_coverage(incident, active)
            return
        on_scene = sorted(
            (m for m in active if m.state == MissionState.ON_SCENE), key=lambda m: self._arrived_at(m, now)
        )
        coming = [m for m in active if m.state not in (MissionState.ON_SCENE, MissionState.RETURNING)]
        if len(on_scene) >= 2:
            await self._hand_over(incident, on_scene, now)
            return
        if not on_scene:
            if not active and incident.status != IncidentStatus.OPEN:
                await self._refill(incident, cover)
            return
        current = on_scene[0]
        assert current.id is not None
        plan = self._plan(incident, current, now)
        cover.plan, cover.plan_for = plan, current.id
        # no relief on scene in time (the gap was alerted when predicted): the drone keeps its reserve and
        # goes home; a relief on its way that is late by less than the overlap is waited for
        if plan is not None and plan.must_leave_at <= now:
            due = self._leave_due.setdefault(current.id, now)
            if now - due >= (self.overlap_s if coming else 0.0):
                await self._leave_for_reserve(incident, current, plan)
                return
        if plan is None or coming:
            return  # cannot plan (no telemetry yet), or the relief is on its way
        if incident.coverage_until is not None:
            ends = now + (as_utc(incident.coverage_until) - datetime.now(UTC)).total_seconds() * self._scale
            if ends <= plan.must_leave_at:
                return  # this drone sees the coverage out
        if plan.gap_predicted and current.id not in cover.alerted_for:
            cover.alerted_for.add(current.id)
            self._alert_gap(incident, current, plan)
        if plan.relief is not None and plan.launch_now and current.id not in cover.relief_failed_for:
            model_eta = plan.relief.eta_s - (max(self._lags) if self._lags else 0.0)
            await self._launch_relief(incident, current, plan.relief.drone_id, cover, model_eta)

    def _arrived_at(self, m: Mission, now: float) -> float:
        assert m.id is not None
        if m.id not in self._arrived:  # arrived before this process started: from the record
            ago = (datetime.now(UTC) - as_utc(m.on_scene_at or datetime.now(UTC))).total_seconds() * self._scale
            self._arrived[m.id] = now - max(0.0, ago)
        return self._arrived[m.id]

    def _sample_batteries(self, now: float) -> None:
        for entry in self._fleet.registry:
            pub = self._fleet.registry.public(entry)
            samples = self._battery.setdefault(entry.spec.id, deque(maxlen=DRAIN_SAMPLES))
            if pub.battery is None or pub.landed:
                samples.clear()  # a new flight starts a new series (charging is no drain)
                continue
            samples.append((now, pub.battery))

    def _plan(self, incident: Incident, current: Mission, now: float) -> overwatch.ReliefPlan | None:
        entry = self._fleet.registry.get(current.drone_id)
        if entry is None:
            return None
        pub = self._fleet.registry.public(entry)
        if pub.battery is None or pub.position is None:
            return None
        nominal = 100.0 / (entry.spec.endurance_min * 60.0)
        measured = overwatch.drain_from_samples(list(self._battery.get(current.drone_id, ())))
        pos, dock = (pub.position.lat, pub.position.lon), (entry.dock.lat, entry.dock.lon)
        try:
            home_m = path_length_m(self._airspace.route(pos, dock))
        except NoRoute:
            home_m = distance_m(*pos, *dock)
        scene_s = float(current.params.get("time_on_scene_s") or 0.0)
        d = overwatch.OnScene(
            current.drone_id, pub.battery, max(nominal, measured or 0.0), home_m, entry.spec.cruise_speed,
            pub.position.alt or 0.0, self.reserve_pct,
            scene_ends_at=self._arrived_at(current, now) + scene_s if scene_s > 0 else None,
        )  # fmt: skip
        options = self._options(incident, current, now)
        return overwatch.plan_relief(now, d, options, overlap_s=self.overlap_s, eta_margin=self.eta_margin)

    def _options(self, incident: Incident, current: Mission, now: float) -> list[overwatch.ReliefOption]:
        """Relief drones, best first: the recommendation for the same template, less the drones the
        fleet-wide plan gives to incidents still waiting; charging ones count from when they are ready."""
        if current.template == IMPORTED_PLAN:
            return []
        params = dict(current.params)
        if "time_on_scene_s" in params:  # a hold (0) would be planned as a long stay: ask for the take-over
            params["time_on_scene_s"] = RELIEF_PLANNING_SCENE_S
        try:
            candidates = self._dispatcher.recommend(incident, current.template, params=params)
            reserved = {a.drone_id for a in self._dispatcher.assignment_plan().assignments}
        except (templates.TemplateError, NoRoute, ServiceError) as exc:
            log.warning("overwatch: incident %s: no relief candidates: %s", incident.id, exc)
            return []
        statuses = {s.drone_id: s for s in self._dispatcher.drone_statuses()}
        lag = max(0.0, *self._lags) if self._lags else 0.0
        out = []
        for c in candidates:
            if c.drone_id in reserved:
                continue
            if c.eligible and c.eta_s is not None:
                out.append(overwatch.ReliefOption(c.drone_id, c.eta_s + lag))
            elif c.reason.code == planning.ReasonCode.CHARGING and c.drone_id in statuses:
                ready_in_min = c.reason.params.get("ready_in_min")
                if isinstance(ready_in_min, int | float):
                    eta = planning.straight_eta_s(statuses[c.drone_id], incident.lat, incident.lon)
                    out.append(overwatch.ReliefOption(c.drone_id, eta + lag, ready_at=now + ready_in_min * 60.0))
        return out

    def _alert_gap(self, incident: Incident, current: Mission, plan: overwatch.ReliefPlan) -> None:
        leave_in = (plan.must_leave_at - plan.now) / self._scale
        if plan.relief is None:
            msg = (f"incident {incident.id}: {current.drone_id} must leave the scene in {leave_in:.0f} s and no "
                   "drone can relieve it: the scene will go uncovered")  # fmt: skip
        else:
            msg = (f"incident {incident.id}: {current.drone_id} must leave the scene in {leave_in:.0f} s; the "
                   f"earliest relief, {plan.relief.drone_id}, arrives {plan.gap_s / self._scale:.0f} s later: "
                   "predicted coverage gap")  # fmt: skip
        self._alerts.raise_("warning", "coverage_gap", msg, drone_id=current.drone_id, mission_id=current.id)

    # -- acting ----------------------------------------------------------------------------------
    async def _launch_relief(
        self, incident: Incident, current: Mission, drone_id: str, cover: _Cover, eta_s: float | None = None
    ) -> None:
        try:
            mission, return_seq, updated = await asyncio.to_thread(self._record_relief, incident, current, drone_id)
        except (ServiceError, ActiveMissionConflict, NoRoute, templates.TemplateError) as exc:
            cover.relief_failed_for.add(current.id or 0)
            self._alerts.raise_(
                "warning", "relief_failed", f"incident {incident.id}: relief by {drone_id} not launched: {exc}",
                drone_id=drone_id, mission_id=current.id,
            )  # fmt: skip
            return
        log.info("overwatch: incident %s: %s launched to relieve %s (mission %s)", incident.id, drone_id,
                 current.drone_id, mission.id)  # fmt: skip
        self._publisher.publish(IncidentChanged(data=IncidentPublic.of(updated)))
        if eta_s is not None and mission.id is not None:
            self._launched[mission.id] = (self._clock(), eta_s)
        self._missions.launch(mission, return_seq=return_seq)

    def _record_relief(self, incident: Incident, current: Mission, drone_id: str) -> tuple[Mission, Any, Incident]:
        """Blocking: compile the relief (same template and parameters, from the relief's dock), check
        it against the airspace and record it as relieving ``current``."""
        tpl = self._dispatcher.template(incident.category, current.template)
        params = dict(current.params)
        entry = self._fleet.entry(drone_id)
        dock = (entry.dock.lat, entry.dock.lon)
        target = (incident.lat, incident.lon)
        compiled = templates.compile_mission(
            tpl, params, dock=(*dock, 0.0), target=target, route=self._airspace.route(dock, target),
            area=incident.area, category=incident.category, cruise_speed=entry.spec.cruise_speed,
            airspace=self._airspace,
        )  # fmt: skip
        items = list(compiled.items)
        approvals = (
            {z.id: incident.approval_ref for z in self._airspace.zones if z.rule == "approval"}
            if incident.approval_ref
            else {}
        )
        check = self._airspace.check_mission(items, home=dock, approvals=approvals)
        if not check.ok:
            raise ImpossibleMission(check.summary, "airspace")
        mission = Mission(
            incident_id=current.incident_id, drone_id=drone_id, sysid=entry.spec.sysid, template=tpl.name,
            params=params, items=[it.to_dict(i) for i, it in enumerate(items)], on_scene_seq=compiled.on_scene_seq,
            airspace_check=check.as_dict(), created_by=ACTOR, relieves_mission_id=current.id,
        )  # fmt: skip
        detail = {"incident_id": current.incident_id, "drone_id": drone_id, "template": tpl.name,
                  "relieves_mission_id": current.id, "relieves_drone_id": current.drone_id,
                  "reason": "relief for continuous overwatch", "airspace": check.as_dict()}  # fmt: skip
        mission, updated = self._store.dispatch_mission(mission, actor=ACTOR, audit_detail=detail)
        return mission, compiled.return_seq, updated

    async def _hand_over(self, incident: Incident, on_scene: list[Mission], now: float) -> None:
        """Two (or more) drones on scene: once the newest has been there ``overlap_s`` (or an older one
        must leave), every older one goes home."""
        newest = on_scene[-1]
        assert newest.id is not None
        if newest.id not in self._near_since and self._near_scene(newest, incident):
            self._near_since[newest.id] = now
        # the mission's state says on scene once the vehicle reports the scene's item; its position must agree
        overlap = now - self._near_since.get(newest.id, now)
        must_go = False
        for old in on_scene[:-1]:
            plan = self._plan(incident, old, now)
            must_go = must_go or (plan is not None and plan.must_leave_at <= now)
        if (newest.id not in self._near_since or overlap < self.overlap_s + HANDOVER_MARGIN_S) and not must_go:
            return
        for old in on_scene[:-1]:
            assert old.id is not None and newest.id is not None
            try:
                await self._missions.command(old.id, "rtl", ACTOR)
            except ServiceError as exc:
                log.warning("overwatch: mission %s: could not send %s home: %s", old.id, old.drone_id, exc)
                continue
            await asyncio.to_thread(
                self._store.record_transition, old.id, {"left_scene_at": datetime.now(UTC)}, actor=ACTOR,
                action="mission.handover",
                detail={"from_mission_id": old.id, "to_mission_id": newest.id, "from_drone_id": old.drone_id,
                        "to_drone_id": newest.drone_id, "incident_id": incident.id,
                        "overlap_s": round(overlap, 1)},
            )  # fmt: skip
            log.info("overwatch: incident %s: %s handed the scene over to %s after %.0f s together",
                     incident.id, old.drone_id, newest.drone_id, overlap)  # fmt: skip
        if incident.on_scene_drone_id != newest.drone_id:  # the video follows the drone that stays
            assert incident.id is not None
            updated = await asyncio.to_thread(
                self._store.update_incident, incident.id, on_scene_drone_id=newest.drone_id
            )
            self._publisher.publish(IncidentChanged(data=IncidentPublic.of(updated)))

    async def _leave_for_reserve(self, incident: Incident, current: Mission, plan: overwatch.ReliefPlan) -> None:
        """Nothing relieves ``current`` before its reserve runs short: it goes home, the scene goes dark."""
        assert current.id is not None
        if current.id in self._sent_home:
            return
        try:
            await self._missions.command(current.id, "rtl", ACTOR)
        except ServiceError as exc:
            log.warning("overwatch: mission %s: could not send %s home: %s", current.id, current.drone_id, exc)
            return
        self._sent_home.add(current.id)
        log.info("overwatch: incident %s: %s leaves the scene for its reserve with no relief there (relief: %s)",
                 incident.id, current.drone_id, plan.relief.drone_id if plan.relief else None)  # fmt: skip
        await asyncio.to_thread(
            self._store.audit, ACTOR, "mission.coverage_leave", "mission", current.id, incident_id=incident.id,
            drone_id=current.drone_id, reason="battery reserve for the way home; no relief on scene",
            relief_drone_id=plan.relief.drone_id if plan.relief else None,
        )  # fmt: skip

    def _near_scene(self, m: Mission, incident: Incident) -> bool:
        """The mission's drone flies within its pattern's reach of the incident."""
        entry = self._fleet.registry.get(m.drone_id)
        if entry is None:
            return False
        pub = self._fleet.registry.public(entry)
        if pub.position is None or pub.landed:
            return False
        reach = max(SCENE_REACH_M, float(m.params.get("radius_m") or 0.0) + float(m.params.get("offset_m") or 0.0))
        return distance_m(pub.position.lat, pub.position.lon, incident.lat, incident.lon) <= reach + SCENE_REACH_M

    async def _refill(self, incident: Incident, cover: _Cover) -> None:
        """Covered, nothing on scene or on its way, but a drone was there before: send the best one
        now (the scene is dark; the relief follows the last mission's template)."""
        assert incident.id is not None
        last = next(
            (m for m in await asyncio.to_thread(self._store.list_missions, incident_id=incident.id, limit=1)),
            None,
        )
        if last is None or last.on_scene_at is None or last.id in cover.relief_failed_for:
            return
        options = self._options(incident, last, self._clock())
        ready = [o for o in options if o.ready_at is None]
        if not ready:
            if last.id not in cover.alerted_for:
                cover.alerted_for.add(last.id or 0)
                self._alerts.raise_("warning", "coverage_gap", f"incident {incident.id}: nothing covers the "
                                    "scene and no drone can go now", mission_id=last.id)  # fmt: skip
            return
        await self._launch_relief(incident, last, ready[0].drone_id, cover)

    async def _end_coverage(self, incident: Incident, active: list[Mission]) -> None:
        """Coverage is over (its duration, or the incident closed): every drone of the incident goes home."""
        assert incident.id is not None
        for m in active:
            state = MissionState(m.state)
            if state == MissionState.RETURNING:
                continue
            assert m.id is not None
            try:
                await self._missions.command(m.id, "rtl" if state in _SENDING_HOME else "abort", ACTOR)
            except ServiceError as exc:
                log.warning("overwatch: mission %s: could not end it: %s", m.id, exc)
        if incident.id not in self._ended:
            self._ended.add(incident.id)
            self._covers.pop(incident.id, None)
            log.info("overwatch: incident %s: coverage over, %d drones sent home", incident.id, len(active))
            await asyncio.to_thread(self._store.audit, ACTOR, "incident.coverage_end", "incident", incident.id,
                                    until=_iso_dt(incident.coverage_until), status=incident.status)  # fmt: skip


def _left(m: Mission) -> float | None:
    when = m.left_scene_at or (m.ended_at if m.state in {s.value for s in TERMINAL} else None)
    return as_utc(when).timestamp() if when is not None else None


def _iso(ts: object) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if isinstance(ts, int | float) else None


def _iso_dt(d: datetime | None) -> str | None:
    return as_utc(d).isoformat() if d is not None else None
