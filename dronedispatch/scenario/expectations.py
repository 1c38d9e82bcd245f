"""Judge a recorded run against the scenario's expectations (pure: data in, verdicts out).

Each check returns a :class:`Verdict` whose ``detail`` says what was seen, so a failed run reads
as an explanation ("park-fire: first drone on scene after 142 s, more than 90 s allowed"), not
a bare "false". A check that cannot be made in this run (the video path is not wired, say) is
*skipped* with the reason, never silently passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dronedispatch.domain import launch
from dronedispatch.domain.airspace import FLOWN_COMMANDS, Airspace
from dronedispatch.domain.fleet import FleetConfig
from dronedispatch.domain.geo import distance_m
from dronedispatch.domain.mission_items import Cmd, MissionItem
from dronedispatch.scenario import coverage
from dronedispatch.scenario.model import Expectation, Scenario
from dronedispatch.scenario.recording import Recording, Sample

PASS, FAIL, SKIP = "pass", "fail", "skip"
CEILING_TOLERANCE_M = 3.0  # position noise and the controller's overshoot at the top of a climb
TERMINAL = ("completed", "aborted", "failed")


@dataclass(frozen=True)
class Verdict:
    name: str
    outcome: str  # pass | fail | skip
    detail: str

    @property
    def passed(self) -> bool:
        return self.outcome != FAIL


@dataclass
class StoreFacts:
    """What the store holds at the end of the run (read once, after everything stopped)."""

    missions: list[dict[str, Any]] = field(default_factory=list)  # id, incident_id, drone_id, state, reason
    audit: list[dict[str, Any]] = field(default_factory=list)  # action, target_type, target_id, detail
    reports: dict[str, int] = field(default_factory=dict)  # source_ref → incident id
    incidents: dict[int, dict[str, Any]] = field(default_factory=dict)
    ingest_rejected: int = 0
    video: dict[int, list[dict[str, Any]]] | None = None  # mission → evidence; None: no video path


@dataclass
class Context:
    spec: Scenario
    rec: Recording
    facts: StoreFacts
    airspace: Airspace
    fleet: FleetConfig


def _refs(e: Expectation, ctx: Context) -> list[str]:
    if e.incident is not None:
        return [e.incident]
    if e.incidents == "all":
        return [i.id for i in ctx.spec.incidents if not i.expect_rejected]
    return list(e.incidents or [])


def _nearest_drones(ctx: Context, ref: str) -> set[str]:
    """The drones whose dock is nearest the incident (several when they share the dock)."""
    entry = ctx.spec.incident(ref)
    arrival = ctx.rec.arrivals.get(ref)
    if arrival is not None and arrival.incident_id in ctx.facts.incidents:
        inc = ctx.facts.incidents[arrival.incident_id]
        lat, lon = inc["lat"], inc["lon"]
    elif entry.location is not None:
        lat, lon = entry.location.lat, entry.location.lon
    else:
        return set()
    docks = {d.id: ctx.fleet.dock(d.dock) for d in ctx.fleet.drones}
    dist = {d: distance_m(lat, lon, dock.lat, dock.lon) for d, dock in docks.items()}
    best = min(dist.values(), default=0.0)
    return {d for d, m in dist.items() if m <= best + 1.0}


def check_on_scene(e: Expectation, ctx: Context) -> Verdict:
    assert e.within is not None
    bad: list[str] = []
    good: list[str] = []
    for ref in _refs(e, ctx):
        arrival = ctx.rec.arrivals.get(ref)
        if arrival is None or arrival.incident_id is None:
            bad.append(f"{ref}: never became an incident ({arrival.error if arrival else 'not sent'})")
            continue
        hit = ctx.rec.on_scene_at(ref)
        if hit is None:
            ms = ctx.rec.missions_for(ref)
            why = (
                "; ".join(f"mission {m.id} {m.drone_id} {m.final}" + (f" ({m.reason})" if m.reason else "") for m in ms)
                or "no mission was dispatched"
            )
            refused = [r for r in ctx.rec.refusals if r.ref == ref]
            if refused and not ms:
                why = f"dispatch refused: {refused[-1].reason}"
            waited = ctx.rec.ended_at - arrival.sent_at
            bad.append(f"{ref}: no drone on scene within {e.within:.0f} s (waited {waited:.0f} s; {why})")
            continue
        t, drone = hit
        response = t - arrival.sent_at
        want = _nearest_drones(ctx, ref) if e.drone == "nearest" else ({e.drone} if e.drone else set())
        if response > e.within:
            bad.append(
                f"{ref}: first drone ({drone}) on scene after {response:.0f} s, more than {e.within:.0f} s allowed"
            )
        elif want and drone not in want:
            nearest = " (the nearest)" if e.drone == "nearest" else ""
            bad.append(f"{ref}: {drone} was first on scene, expected {' or '.join(sorted(want))}{nearest}")
        else:
            good.append(f"{ref}: {drone} on scene after {response:.0f} s")
    return _verdict(bad, good)


def check_dispatch_refused(e: Expectation, ctx: Context) -> Verdict:
    assert e.incident is not None
    refusals = [r for r in ctx.rec.refusals if r.ref == e.incident]
    if not refusals:
        return Verdict("", FAIL, f"{e.incident}: no dispatch was refused")
    for r in refusals:
        if (e.code is None or r.code == e.code) and (
            e.reason_contains is None or e.reason_contains.lower() in r.reason.lower()
        ):
            if not r.reason.strip():
                return Verdict("", FAIL, f"{e.incident}: refused ({r.code}) without a reason")
            return Verdict("", PASS, f"{e.incident}: refused ({r.code}): {r.reason}")
    seen = "; ".join(f"{r.code}: {r.reason}" for r in refusals)
    return Verdict("", FAIL, f"{e.incident}: refused, but not as expected ({seen})")


def check_mission_state(e: Expectation, ctx: Context) -> Verdict:
    bad: list[str] = []
    good: list[str] = []
    for ref in _refs(e, ctx):
        ms = ctx.rec.missions_for(ref)
        if not ms:
            bad.append(f"{ref}: no mission")
            continue
        m = ms[-1]
        text = f"{ref}: mission {m.id} ({m.drone_id}) ended {m.final}" + (f" — {m.reason}" if m.reason else "")
        if m.final not in e.states:
            bad.append(f"{text}; expected {' or '.join(e.states)}")
        elif e.reason_contains and e.reason_contains.lower() not in (m.reason or "").lower():
            bad.append(f"{text}; the reason should mention {e.reason_contains!r}")
        else:
            good.append(text)
    return _verdict(bad, good)


def airspace_violations(samples: list[Sample], airspace: Airspace, approved: Callable[[Sample], bool]) -> list[str]:
    """Where a recorded track breaks the airspace: prohibited zones, approval zones, ceilings."""
    out: list[str] = []
    seen: set[str] = set()
    for s in samples:
        if s.landed and not s.armed:
            continue
        problems = []
        if s.alt > airspace.ceiling_m + CEILING_TOLERANCE_M:
            problems.append(("ceiling", f"{s.alt:.0f} m above the {airspace.ceiling_m:.0f} m ceiling"))
        for z in airspace.zones_at(s.lat, s.lon):
            if z.rule == "prohibited":
                problems.append((z.id, f"inside prohibited zone {z.label}"))
            elif z.rule == "approval" and not approved(s):
                problems.append((z.id, f"inside {z.label} without an approval reference"))
            elif z.rule == "ceiling" and z.ceiling_m is not None and s.alt > z.ceiling_m + CEILING_TOLERANCE_M:
                problems.append((z.id, f"{s.alt:.0f} m in {z.label} (ceiling {z.ceiling_m:.0f} m)"))
        for key, text in problems:
            if key not in seen:
                seen.add(key)
                out.append(f"t={s.t:.0f} s at {s.lat:.5f},{s.lon:.5f}: {text}")
    return out


def check_airspace(e: Expectation, ctx: Context) -> Verdict:
    approved_missions = {m.id for m in ctx.rec.missions.values() if m.approval}
    bad: list[str] = []
    flown = 0
    for drone, samples in sorted(ctx.rec.tracks.items()):
        if e.drones and drone not in e.drones:
            continue
        flown += sum(1 for s in samples if not s.landed)
        for v in airspace_violations(samples, ctx.airspace, lambda s: s.mission_id in approved_missions):
            bad.append(f"{drone}: {v}")
    if not ctx.rec.tracks:
        return Verdict("", FAIL, "no telemetry was recorded")
    return _verdict(
        bad,
        [
            f"{flown} airborne samples checked, no zone entered without leave, ceiling "
            f"{ctx.airspace.ceiling_m:.0f} m kept"
        ],
    )


def flights(samples: list[Sample]) -> list[tuple[Sample, Sample]]:
    """(take-off sample, first sample back on the ground) for every flight in a track."""
    out, start = [], None
    for s in samples:
        if start is None and not s.landed:
            start = s
        elif start is not None and s.landed:
            out.append((start, s))
            start = None
    return out


def check_battery_reserve(e: Expectation, ctx: Context) -> Verdict:
    bad: list[str] = []
    good: list[str] = []
    for drone, samples in sorted(ctx.rec.tracks.items()):
        if e.drones and drone not in e.drones:
            continue
        for _takeoff, end in flights(samples):
            if end.battery is None:
                continue
            text = f"{drone} landed at t={end.t:.0f} s with {end.battery:.0f}%"
            (bad if end.battery <= e.min_pct else good).append(
                text + (f" (reserve {e.min_pct:.0f}%)" if end.battery <= e.min_pct else "")
            )
        if samples and not samples[-1].landed:
            bad.append(f"{drone} still in the air at the end of the run ({samples[-1].battery or 0:.0f}%)")
    if not bad and not good:
        return Verdict("", FAIL, "no drone flew")
    return _verdict(bad, good)


def check_failures_have_reasons(e: Expectation, ctx: Context) -> Verdict:
    bad: list[str] = []
    good: list[str] = []
    for m in ctx.facts.missions:
        if m["state"] in ("failed", "aborted"):
            (good if (m.get("reason") or "").strip() else bad).append(
                f"mission {m['id']} {m['state']}: {m.get('reason') or '(no reason)'}"
            )
    for r in ctx.rec.refusals:
        (good if r.reason.strip() else bad).append(f"{r.ref}: dispatch refused ({r.code}): {r.reason or '(no reason)'}")
    for a in ctx.rec.arrivals.values():
        if a.error is not None:
            (good if a.error.strip() else bad).append(f"{a.ref}: report refused: {a.error or '(no reason)'}")
    return _verdict(bad, good or ["nothing failed"])


def check_nothing_lost(e: Expectation, ctx: Context) -> Verdict:
    bad: list[str] = []
    good: list[str] = []
    for entry in ctx.spec.incidents:
        a = ctx.rec.arrivals.get(entry.id)
        if a is None:
            bad.append(f"{entry.id}: never sent")
        elif entry.expect_rejected:
            (good if a.error else bad).append(
                f"{entry.id}: refused as expected: {a.error}"
                if a.error
                else f"{entry.id}: accepted, expected a refusal"
            )
        elif a.incident_id is None:
            bad.append(f"{entry.id}: report never reached an incident ({a.error or 'lost on the way'})")
        elif a.source_ref is not None and ctx.facts.reports.get(a.source_ref) != a.incident_id:
            bad.append(f"{entry.id}: report {a.source_ref} is not stored with incident {a.incident_id}")
    dispatched = {str(x["target_id"]) for x in ctx.facts.audit if x["action"] == "mission.dispatch"}
    state_changes: dict[str, set[str]] = {}
    for x in ctx.facts.audit:
        if x["action"] == "mission.state":
            state_changes.setdefault(str(x["target_id"]), set()).add(str(x["detail"].get("new")))
    for m in ctx.facts.missions:
        mid = str(m["id"])
        if mid not in dispatched:
            bad.append(f"mission {mid}: no mission.dispatch entry in the audit log")
        elif m["state"] != "planned" and m["state"] not in state_changes.get(mid, set()):
            bad.append(f"mission {mid}: final state {m['state']} not in the audit log")
    good.append(f"{len(ctx.spec.incidents)} reports accounted for, {len(ctx.facts.missions)} missions audited")
    return _verdict(bad, good)


def check_alert(e: Expectation, ctx: Context) -> Verdict:
    for t, a in ctx.rec.alerts:
        if (
            (e.code is None or a.get("code") == e.code)
            and (e.reason_contains is None or e.reason_contains.lower() in str(a.get("message", "")).lower())
            and (not e.drones or a.get("drone_id") in e.drones)
        ):
            return Verdict("", PASS, f"t={t:.0f} s {a.get('code')}: {a.get('message')}")
    seen = ", ".join(sorted({str(a.get("code")) for _, a in ctx.rec.alerts})) or "none"
    return Verdict("", FAIL, f"no such alert (alerts seen: {seen})")


def check_video(e: Expectation, ctx: Context) -> Verdict:
    """Video from the drone on scene reached the operations view: a frame through the snapshot
    route while on scene, and the recording and on-scene snapshot kept as evidence."""
    if ctx.facts.video is None:
        return Verdict("", SKIP, "not checked: this service has no video path from the vehicles to the "
                                 "operations view (no video ingest in the runtime)")  # fmt: skip
    refs = _refs(e, ctx) if (e.incident or e.incidents) else [i.id for i in ctx.spec.incidents]
    bad: list[str] = []
    good: list[str] = []
    for ref in refs:
        scene = [m for m in ctx.rec.missions_for(ref) if m.first("on_scene") is not None]
        if not scene:
            bad.append(f"{ref}: no drone on scene, so no video to check")
            continue
        m = scene[0]
        frame = ctx.rec.video.get(m.id)
        kept = {x["kind"]: x["size"] for x in ctx.facts.video.get(m.id, [])}
        text = f"{ref}: mission {m.id} ({m.drone_id})"
        if frame is None or not frame[0]:
            bad.append(f"{text}: no video frame reached the operations view ({frame[1] if frame else 'not asked'})")
        elif not kept.get("recording") or not kept.get("snapshot"):
            have = ", ".join(f"{k} {v} bytes" for k, v in kept.items()) or "none"
            bad.append(f"{text}: frame seen ({frame[1]}) but evidence incomplete (kept: {have})")
        else:
            good.append(f"{text}: {frame[1]} on scene; recording {kept['recording']} bytes and snapshot kept")
    return _verdict(bad, good)


def check_commands_accepted(e: Expectation, ctx: Context) -> Verdict:
    """Every pilot command of the timeline was accepted by the service and the vehicle."""
    if not ctx.rec.pilot_commands:
        return Verdict("", FAIL, "no pilot command was sent")
    bad: list[str] = []
    good: list[str] = []
    for t, ref, command, result in ctx.rec.pilot_commands:
        (good if result == "accepted" else bad).append(f"t={t:.0f} s {command} {ref}: {result}")
    return _verdict(bad, good)


@dataclass(frozen=True)
class Response:
    """One mission's response: from the dispatch click to on scene, against the airframe's floor."""

    mission_id: int
    ref: str | None
    drone_id: str
    clicked_at: float
    on_scene_at: float
    floor: launch.ResponseFloor

    @property
    def response_s(self) -> float:
        return self.on_scene_at - self.clicked_at

    @property
    def ratio(self) -> float:
        return self.response_s / self.floor.total_s if self.floor.total_s > 0 else float("inf")


def mission_floor(
    mission: dict[str, Any], fleet: FleetConfig, door_open_s: float | None = None
) -> launch.ResponseFloor | None:
    """The physical floor of a stored mission: its dock's door time (``door_open_s``, as the dock reported
    it before the dispatch, else the fleet file's launch delay),
    climb rate and cruise speed; the take-off item's height; the horizontal way from the dock through
    the route to the arrival point; the arrival's altitude (see :mod:`dronedispatch.domain.launch`)."""
    spec = next((d for d in fleet.drones if d.id == mission["drone_id"]), None)
    items = [MissionItem.from_dict(d) for d in mission.get("items") or []]
    arrival_seq = int(mission.get("on_scene_seq") or 0) - 1
    if spec is None or not 0 <= arrival_seq < len(items):
        return None
    dock = fleet.dock(spec.dock)
    flown = [it for it in items[: arrival_seq + 1] if it.command in FLOWN_COMMANDS]
    if not flown:
        return None
    first = items[0]
    departure = first.alt if first.command == Cmd.NAV_TAKEOFF else flown[-1].alt
    speed = next((it.param2 for it in items[:arrival_seq] if it.command == Cmd.DO_CHANGE_SPEED and it.param2 > 0),
                 spec.cruise_speed)
    way = [(it.lat, it.lon) for it in flown if it.command != Cmd.NAV_TAKEOFF]
    return launch.response_floor(
        door_s=launch.door_s(door_open_s, spec.launch_delay_s),
        distance_m=launch.arrival_distance_m((dock.lat, dock.lon), way),
        departure_alt_m=departure, transit_alt_m=flown[-1].alt, climb_rate_m_s=spec.climb_speed,
        cruise_speed_m_s=speed,
    )  # fmt: skip


def responses(rec: Recording, facts: StoreFacts, fleet: FleetConfig) -> list[Response]:
    """Every mission the operator dispatched that reached the scene, with its floor.

    On scene is when the simulated vehicle itself reached the arrival point (its own clock) when the
    run recorded that, else when the service reported the mission on scene: the service's lag in
    noticing is milliseconds in service but a speed factor multiplies it in simulated seconds."""
    out = []
    for m in facts.missions:
        trace = rec.missions.get(m["id"])
        clicked = rec.dispatched_at.get(m["id"])
        reported = trace.first("on_scene") if trace is not None else None
        spec = next((d for d in fleet.drones if d.id == m["drone_id"]), None)
        door = rec.door_s_at(spec.dock, clicked) if spec is not None and clicked is not None else None
        floor = mission_floor(m, fleet, door)
        if clicked is None or reported is None or floor is None:
            continue
        arrival_seq = int(m.get("on_scene_seq") or 0) - 1
        reached = next((t for t, seq in rec.reached.get(m["drone_id"], []) if seq == arrival_seq and t >= clicked),
                       None)  # fmt: skip
        on_scene = reached if reached is not None and reached <= reported else reported
        out.append(Response(m["id"], rec.ref_of(m["incident_id"]), m["drone_id"], clicked, on_scene, floor))
    return sorted(out, key=lambda r: r.mission_id)


def check_response_within_floor(e: Expectation, ctx: Context) -> Verdict:
    """Every dispatched mission reached the scene within ``max_ratio`` × its physical floor."""
    wanted = set(_refs(e, ctx)) if (e.incident or e.incidents) else None
    rs = [r for r in responses(ctx.rec, ctx.facts, ctx.fleet) if wanted is None or r.ref in wanted]
    if e.drones:
        rs = [r for r in rs if r.drone_id in e.drones]
    if not rs:
        return Verdict("", FAIL, "no dispatched mission reached the scene")
    bad: list[str] = []
    good: list[str] = []
    for r in rs:
        text = (f"mission {r.mission_id} ({r.drone_id}{', ' + r.ref if r.ref else ''}): dispatch to on scene "
                f"{r.response_s:.0f} s, floor {r.floor.total_s:.0f} s ({r.floor.describe()}), ratio {r.ratio:.2f}")
        (bad if r.ratio > e.max_ratio else good).append(text + (f" > {e.max_ratio:.2f}" if r.ratio > e.max_ratio
                                                                else ""))
    return _verdict(bad, good)


def _covered(e: Expectation, ctx: Context) -> list[int]:
    ids = coverage.covered_incidents(ctx.rec)
    if e.incident is not None or e.incidents is not None:
        wanted = {a.incident_id for r in _refs(e, ctx) if (a := ctx.rec.arrivals.get(r)) is not None}
        ids = [i for i in ids if i in wanted]
    return ids


def check_coverage_no_gap(e: Expectation, ctx: Context) -> Verdict:
    """Every covered incident: at least one hand-over, each with at least ``overlap_s`` of both drones
    on scene (by mission state and, when the store has the incident's place, over it by their tracks),
    and no uncovered stretch from the first arrival on."""
    ids = _covered(e, ctx)
    if not ids:
        return Verdict("", FAIL, "no incident asked for coverage")
    bad: list[str] = []
    good: list[str] = []
    for iid in ids:
        inc = ctx.facts.incidents.get(iid)
        tl = coverage.timeline(ctx.rec, iid, (inc["lat"], inc["lon"]) if inc else None)
        if not tl.handovers:
            bad.append(f"incident {iid}: no hand-over happened ({len(tl.intervals)} drones on scene)")
            continue
        for h in tl.handovers:
            text = f"incident {iid}: {h.from_drone} → {h.to_drone} at {h.at:.0f} s"
            if h.overlap_s < e.overlap_s:
                what = f"gap {h.gap_s:.0f} s" if h.gap_s > 0 else f"overlap only {h.overlap_s:.0f} s"
                bad.append(f"{text}: {what} (at least {e.overlap_s:.0f} s overlap wanted)")
            else:
                good.append(f"{text}: overlap {h.overlap_s:.0f} s")
        for a, b in tl.gaps:
            bad.append(f"incident {iid}: uncovered from {a:.0f} s to {b:.0f} s")
    return _verdict(bad, good)


def check_video_followed(e: Expectation, ctx: Context) -> Verdict:
    """The service's drone on scene for each covered incident (what the video shows) was always a drone
    actually over the scene, allowing ``within`` (default 30 s: the approach and the climb away) at each change."""
    ids = _covered(e, ctx)
    if not ids:
        return Verdict("", FAIL, "no incident asked for coverage")
    tolerance = e.within if e.within is not None else 30.0
    bad: list[str] = []
    good: list[str] = []
    for iid in ids:
        inc = ctx.facts.incidents.get(iid)
        if inc is None:
            bad.append(f"incident {iid}: not in the store")
            continue
        wrong, checked = coverage.video_mismatches(ctx.rec, iid, (inc["lat"], inc["lon"]), tolerance_s=tolerance)
        if checked <= 0:
            bad.append(f"incident {iid}: no drone was ever over the scene")
        for a, b, why in wrong:
            bad.append(f"incident {iid}: from {a:.0f} s to {b:.0f} s {why}")
        if not wrong and checked > 0:
            changes = sum(1 for _, d, _ in ctx.rec.coverage.get(iid, []) if d is not None)
            good.append(f"incident {iid}: followed the drone on scene for {checked:.0f} s over {changes} switches")
    return _verdict(bad, good)


CHECKS: dict[str, Callable[[Expectation, Context], Verdict]] = {
    "on_scene": check_on_scene,
    "dispatch_refused": check_dispatch_refused,
    "mission_state": check_mission_state,
    "airspace": check_airspace,
    "battery_reserve": check_battery_reserve,
    "failures_have_reasons": check_failures_have_reasons,
    "nothing_lost": check_nothing_lost,
    "alert": check_alert,
    "video": check_video,
    "commands_accepted": check_commands_accepted,
    "coverage_no_gap": check_coverage_no_gap,
    "video_followed": check_video_followed,
    "response_within_floor": check_response_within_floor,
}


def default_name(e: Expectation) -> str:
    if e.name:
        return e.name
    what = e.incident or (",".join(e.incidents) if isinstance(e.incidents, list) else e.incidents) or ""
    extra = f" within {e.within:.0f}s" if e.within is not None else ""
    return f"{e.check}{f' {what}' if what else ''}{extra}"


def evaluate(ctx: Context) -> list[Verdict]:
    out = []
    for e in ctx.spec.expect:
        v = CHECKS[e.check](e, ctx)
        out.append(Verdict(default_name(e), v.outcome, v.detail))
    return out


def _verdict(bad: list[str], good: list[str]) -> Verdict:
    if bad:
        return Verdict("", FAIL, "; ".join(bad))
    return Verdict("", PASS, "; ".join(good) if len(good) <= 6 else f"{'; '.join(good[:5])}; … ({len(good)} in all)")
