"""Overwatch against a real store (SQLite): relief missions beside the mission they relieve, the drone
on scene kept on the incident, a template's coverage request, and the coverage timeline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from dronedispatch import cityfiles
from dronedispatch.app.alerts import Alerts
from dronedispatch.app.fleet import DroneRegistry, Fleet
from dronedispatch.app.overwatch import OverwatchService, _Cover
from dronedispatch.bus import LocalEventBus
from dronedispatch.domain import overwatch
from dronedispatch.domain.incidents import Category, Report, Severity
from dronedispatch.domain.mission_state import MissionState
from dronedispatch.store.db import make_engine, migrate
from dronedispatch.store.models import Incident, Mission
from dronedispatch.store.repo import ActiveMissionConflict, Store

SCENE = (37.3885, 126.6580)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    engine = make_engine(f"sqlite:///{tmp_path / 'dd.db'}")
    migrate(engine)
    yield Store(engine)
    engine.dispose()


def _incident(store: Store) -> Incident:
    report = Report(source="operator", category=Category.FIRE, severity=Severity.SEVERE, lat=SCENE[0], lon=SCENE[1],
                    observed_at=datetime.now(UTC))  # fmt: skip
    return store.create_incident(report, *SCENE)


def _mission(store: Store, incident: Incident, drone: str, sysid: int, relieves: int | None = None, **params: Any
             ) -> Mission:  # fmt: skip
    m = Mission(incident_id=incident.id, drone_id=drone, sysid=sysid, template="hover_roi", created_by="test",
                params={"time_on_scene_s": 0, **params}, relieves_mission_id=relieves)  # fmt: skip
    return store.dispatch_mission(m, actor="test", audit_detail={})[0]


def _service(store: Store) -> OverwatchService:
    bus = LocalEventBus()
    fleet = Fleet(DroneRegistry(cityfiles.load_fleet().sized(4)), store, bus)
    unused = cast(Any, None)  # the paths tested here plan nothing and launch nothing
    return OverwatchService(store, bus, fleet, unused, unused, unused, Alerts(bus))


def test_a_relief_flies_beside_the_mission_it_relieves_but_a_second_first_mission_is_refused(store: Store) -> None:
    inc = _incident(store)
    first = _mission(store, inc, "dd-01", 1)
    relief = _mission(store, inc, "dd-02", 2, relieves=first.id)
    assert {m.id for m in store.list_missions(active=True, incident_id=inc.id)} == {first.id, relief.id}
    with pytest.raises(ActiveMissionConflict) as exc:
        _mission(store, inc, "dd-03", 3)
    assert exc.value.kind == "incident"
    with pytest.raises(ActiveMissionConflict) as exc:  # one drone still flies one mission at a time
        _mission(store, _incident(store), "dd-02", 2, relieves=first.id)
    assert exc.value.kind == "drone"


def test_the_drone_on_scene_follows_the_hand_over_and_the_timeline_shows_it(store: Store) -> None:
    svc = _service(store)
    inc = _incident(store)
    assert inc.id is not None
    first = _mission(store, inc, "dd-01", 1, coverage_min=60)
    t0 = datetime.now(UTC)
    first = store.update_mission(first.id or 0, state="on_scene", on_scene_at=t0)
    updated = svc._scene_record(first, MissionState.ON_SCENE)
    # the template asked for an hour of coverage: from now, with the first drone on scene
    assert updated is not None and updated.on_scene_drone_id == "dd-01" and updated.coverage_mode == "duration"
    assert updated.coverage_s == 3600 and updated.coverage_until is not None
    assert timedelta(minutes=59) < updated.coverage_until.replace(tzinfo=UTC) - t0 < timedelta(minutes=61)

    relief = _mission(store, inc, "dd-02", 2, relieves=first.id)
    relief = store.update_mission(relief.id or 0, state="on_scene", on_scene_at=t0 + timedelta(seconds=600))
    assert svc._scene_record(relief, MissionState.ON_SCENE) is None  # the video stays until the hand-over
    first = store.update_mission(first.id or 0, state="returning")
    updated = svc._scene_record(first, MissionState.RETURNING)
    assert updated is not None and updated.on_scene_drone_id == "dd-02"
    first = store.get_mission(first.id or 0)
    assert first.left_scene_at is not None
    store.update_mission(first.id or 0, left_scene_at=t0 + timedelta(seconds=640))

    view = svc.coverage(inc.id)
    assert view["mode"] == "duration" and view["on_scene_drone_id"] == "dd-02" and view["active"] is True
    assert [i["drone_id"] for i in view["intervals"]] == ["dd-01", "dd-02"]
    [h] = view["handovers"]
    assert (h["from_drone"], h["to_drone"], h["from_mission"], h["to_mission"]) == ("dd-01", "dd-02", first.id,
                                                                                    relief.id)  # fmt: skip
    assert h["overlap_s"] == pytest.approx(40.0) and view["gaps"] == []
    assert [m["relieves_mission_id"] for m in view["missions"]] == [None, first.id]


def test_the_coverage_view_is_valid_json_when_no_relief_exists(store: Store) -> None:
    svc = _service(store)
    svc.use_clock(lambda: 1000.0, scale=10.0)  # a simulator ten times faster than the wall clock
    inc = _incident(store)
    assert inc.id is not None
    on_scene = overwatch.OnScene("dd-01", 60.0, 0.1, 1500.0, 15.0, 60.0)
    svc._covers[inc.id] = _Cover(plan=overwatch.plan_relief(1000.0, on_scene, []))
    plan = json.loads(json.dumps(svc.coverage(inc.id), allow_nan=False))["plan"]
    # 260 simulated seconds are 26 on the wall clock; an endless gap is null
    assert plan == {"must_leave_in_s": pytest.approx(26.0), "relief_drone_id": None, "launch_in_s": None,
                    "arrive_in_s": None, "overlap_s": None, "gap_s": None, "short_overlap": False}  # fmt: skip
