"""The checks as pure functions of a recording: what passes, what fails, and what the verdict says."""

from __future__ import annotations

from pathlib import Path

import pytest

from dronedispatch.domain import mission_state as ms
from dronedispatch.domain.airspace import Airspace
from dronedispatch.domain.mission_state import LandedState, MissionState, VehicleObservation
from dronedispatch.scenario.expectations import FAIL, PASS, SKIP, Context, StoreFacts, evaluate
from dronedispatch.scenario.loader import load_scenario
from dronedispatch.scenario.recording import Arrival, MissionTrace, Recording, Refusal, Sample

HOME = (37.3918, 126.6393)
AIRSPACE = Airspace.from_geojson(
    {
        "type": "FeatureCollection",
        "properties": {"ceiling_m": 150},
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [126.650, 37.400]},
                "properties": {
                    "id": "base",
                    "name_ko": "기지",
                    "name_en": "Base",
                    "rule": "prohibited",
                    "radius_m": 300,
                },
            },
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [126.620, 37.400]},
                "properties": {"id": "port", "name_ko": "공항", "name_en": "Port", "rule": "approval", "radius_m": 500},
            },
        ],
    }
)
SCENARIO = """\
name: unit
duration: 10m
fleet: {vehicles: 2}
incidents:
  - {id: a, at: 10s, location: {lat: 37.3926, lon: 126.6378}}
  - {id: b, at: 20s, via: operator, location: {lat: 37.3780, lon: 126.6600}}
expect:
  - {check: on_scene, incidents: all, within: 60s, drone: nearest}
  - {check: airspace}
  - {check: battery_reserve, min_pct: 20}
  - {check: failures_have_reasons}
  - {check: nothing_lost}
  - {check: dispatch_refused, incident: b, code: airspace}
  - {check: mission_state, incident: a, states: [completed]}
  - {check: alert, code: link_lost}
  - {check: video}
"""


def sample(
    t: float,
    lat: float = HOME[0],
    lon: float = HOME[1],
    alt: float = 0.0,
    battery: float = 90.0,
    landed: bool = True,
    mission: int | None = None,
) -> Sample:
    return Sample(t, lat, lon, alt, battery, True, 0.0, "ready", not landed, landed, mission)


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    path = tmp_path / "unit.yaml"
    path.write_text(SCENARIO)
    loaded = load_scenario(path)
    rec = Recording()
    rec.arrivals["a"] = Arrival("a", "webhook", 10.0, incident_id=1, source_ref="scenario:unit:a")
    rec.arrivals["b"] = Arrival("b", "operator", 20.0, incident_id=2)
    rec.missions[1] = MissionTrace(1, 1, "dd-01", states=[(12, "uploading"), (50, "on_scene"), (120, "completed")])
    rec.tracks["dd-01"] = [sample(0), sample(30, alt=50, landed=False, battery=80, mission=1), sample(119, battery=60)]
    rec.refusals.append(Refusal(21, "b", "airspace", "item 1: entering Port needs an approval reference"))
    rec.alerts.append((40.0, {"code": "link_lost", "message": "dd-01: link lost", "drone_id": "dd-01"}))
    rec.ended_at = 130
    facts = StoreFacts(
        missions=[{"id": 1, "incident_id": 1, "drone_id": "dd-01", "state": "completed", "reason": None}],
        audit=[
            {"action": "mission.dispatch", "target_type": "mission", "target_id": "1", "detail": {}},
            {"action": "mission.state", "target_type": "mission", "target_id": "1", "detail": {"new": "completed"}},
        ],
        reports={"scenario:unit:a": 1},
        incidents={1: {"lat": 37.3926, "lon": 126.6378}, 2: {"lat": 37.3780, "lon": 126.6600}},
    )
    return Context(loaded.spec, rec, facts, AIRSPACE, loaded.fleet)


def outcomes(ctx: Context) -> dict[str, tuple[str, str]]:
    return {v.name.split(" ")[0]: (v.outcome, v.detail) for v in evaluate(ctx)}


def test_a_good_run(ctx: Context) -> None:
    got = outcomes(ctx)
    assert got["on_scene"][0] == FAIL and "b: no drone on scene within 60 s" in got["on_scene"][1]
    assert "a: dd-01 on scene after 40 s" not in got["on_scene"][1]  # failures only, when any
    for name in (
        "airspace",
        "battery_reserve",
        "failures_have_reasons",
        "nothing_lost",
        "dispatch_refused",
        "mission_state",
        "alert",
    ):
        assert got[name][0] == PASS, (name, got[name])
    assert got["video"][0] == SKIP and "no video" in got["video"][1]


def test_late_or_wrong_drone_is_named(ctx: Context) -> None:
    ctx.rec.missions[1].states[1] = (95, "on_scene")
    assert "a: first drone (dd-01) on scene after 85 s, more than 60 s allowed" in outcomes(ctx)["on_scene"][1]
    ctx.rec.missions[1] = MissionTrace(1, 1, "dd-02", states=[(50, "on_scene")])
    assert "a: dd-02 was first on scene, expected dd-01 (the nearest)" in outcomes(ctx)["on_scene"][1]


def test_airspace_violations_from_the_track(ctx: Context) -> None:
    ctx.rec.tracks["dd-01"].insert(2, sample(60, 37.400, 126.650, alt=60, landed=False, mission=1))
    ctx.rec.tracks["dd-01"].insert(3, sample(70, 37.400, 126.620, alt=60, landed=False, mission=1))
    ctx.rec.tracks["dd-01"].insert(4, sample(80, alt=170, landed=False, mission=1))
    outcome, detail = outcomes(ctx)["airspace"]
    assert outcome == FAIL
    assert "inside prohibited zone Base (기지)" in detail
    assert "inside Port (공항) without an approval reference" in detail
    assert "170 m above the 150 m ceiling" in detail
    ctx.rec.missions[1].approval = True  # with an approval the approval zone is fine, the rest is not
    detail = outcomes(ctx)["airspace"][1]
    assert "Port" not in detail and "Base" in detail


def test_landing_below_the_reserve_and_still_flying(ctx: Context) -> None:
    ctx.rec.tracks["dd-01"][-1] = sample(119, battery=12)
    assert "dd-01 landed at t=119 s with 12% (reserve 20%)" in outcomes(ctx)["battery_reserve"][1]
    ctx.rec.tracks["dd-01"].append(sample(125, alt=30, landed=False, battery=50))
    assert "dd-01 still in the air at the end of the run" in outcomes(ctx)["battery_reserve"][1]


def test_failures_without_reasons_and_missing_audit(ctx: Context) -> None:
    ctx.facts.missions[0].update(state="failed", reason="")
    ctx.facts.audit = ctx.facts.audit[:1]
    got = outcomes(ctx)
    assert got["failures_have_reasons"] == (FAIL, "mission 1 failed: (no reason)")
    assert "mission 1: final state failed not in the audit log" in got["nothing_lost"][1]
    ctx.facts.audit = []
    assert "mission 1: no mission.dispatch entry in the audit log" in outcomes(ctx)["nothing_lost"][1]


def test_lost_reports(ctx: Context) -> None:
    ctx.rec.arrivals["a"].incident_id = None
    ctx.rec.arrivals["a"].error = None
    assert "a: report never reached an incident (lost on the way)" in outcomes(ctx)["nothing_lost"][1]
    del ctx.rec.arrivals["b"]
    assert "b: never sent" in outcomes(ctx)["nothing_lost"][1]


def test_mission_state_and_refusal_mismatch(ctx: Context) -> None:
    ctx.rec.missions[1].states.append((130, "failed"))
    ctx.rec.missions[1].reason = "no link to the vehicle for 60 s"
    assert "ended failed — no link to the vehicle for 60 s; expected completed" in outcomes(ctx)["mission_state"][1]
    ctx.rec.refusals[0] = Refusal(21, "b", "no_drone", "no drone can answer this incident")
    assert "refused, but not as expected (no_drone: " in outcomes(ctx)["dispatch_refused"][1]


def test_a_late_observation_does_not_skip_on_scene() -> None:
    """Found by the surge scenario: at high speed factors (or with telemetry lost) the first
    observation after the scene item can already show the mission's return item; the mission
    must still pass through on_scene, or the incident reads as never reached."""
    past_scene = VehicleObservation(
        armed=True, mode="AUTO.MISSION", landed_state=LandedState.IN_AIR, mission_seq=9, on_scene_seq=4, return_seq=8
    )
    for state in (MissionState.LAUNCHING, MissionState.ENROUTE):
        t = ms.advance(state, past_scene)
        assert t.new_state == MissionState.ON_SCENE
        assert ms.advance(t.new_state, past_scene).new_state == MissionState.RETURNING


def test_video_check_needs_a_frame_on_scene_and_the_evidence(ctx: Context) -> None:
    ctx.facts.video = {}
    assert "no video frame reached the operations view (not asked)" in outcomes(ctx)["video"][1]
    ctx.rec.video[1] = (False, "HTTP 503: drone dd-01: camera did not answer")
    assert "camera did not answer" in outcomes(ctx)["video"][1]
    ctx.rec.video[1] = (True, "30000 bytes of JPEG")
    assert "evidence incomplete (kept: none)" in outcomes(ctx)["video"][1]
    ctx.facts.video = {1: [{"kind": "recording", "size": 900_000}, {"kind": "snapshot", "size": 30_000}]}
    outcome, detail = outcomes(ctx)["video"]
    assert outcome == FAIL and "b: no drone on scene, so no video to check" in detail
    ctx.spec.expect[-1].incident = "a"
    assert outcomes(ctx)["video"] == (
        PASS,
        "a: mission 1 (dd-01): 30000 bytes of JPEG on scene; recording 900000 bytes and snapshot kept",
    )


def test_pilot_commands_must_be_accepted(ctx: Context) -> None:
    ctx.spec.expect.append(ctx.spec.expect[0].model_copy(update={"check": "commands_accepted", "incidents": None}))
    assert outcomes(ctx)["commands_accepted"] == (FAIL, "no pilot command was sent")
    ctx.rec.pilot_commands += [(240.0, "a", "rtl", "accepted"), (250.0, "a", "land", "HTTP 504: no answer")]
    assert outcomes(ctx)["commands_accepted"] == (FAIL, "t=250 s land a: HTTP 504: no answer")
