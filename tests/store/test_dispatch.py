"""Dispatch, mission transitions and drone maintenance: each a single transaction in the database."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import StatementError

from dronedispatch.domain.incidents import Category, Report, Severity
from dronedispatch.store.db import make_engine, migrate
from dronedispatch.store.models import Incident, Mission
from dronedispatch.store.repo import ActiveMissionConflict, NotFound, Store

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
CALLERS = 50


def new_incident(store: Store, n: int = 0) -> int:
    report = Report(
        source="webhook",
        source_ref=f"r-{n}",
        category=Category.FIRE,
        severity=Severity.SEVERE,
        lat=37.39,
        lon=126.63,
        observed_at=T0,
        description="smoke",
    )
    incident_id = store.create_incident(report, 37.39, 126.63).id
    assert incident_id is not None
    return incident_id


def mission(incident_id: int, drone_id: str = "dd-01", **kw: Any) -> Mission:
    return Mission(
        incident_id=incident_id,
        drone_id=drone_id,
        sysid=int(drone_id[-2:]),
        template="orbit",
        items=[{"seq": 0, "command": 22}],
        created_by="kim",
        **kw,
    )


def dispatch(store: Store, m: Mission) -> tuple[Mission, Incident]:
    return store.dispatch_mission(m, actor="kim", audit_detail={"drone_id": m.drone_id, "eta_s": 42.0})


def race(store: Store, missions: list[Mission]) -> tuple[list[Mission], list[ActiveMissionConflict]]:
    """Every mission dispatched at once from its own thread."""
    start = threading.Barrier(len(missions))

    def one(m: Mission) -> Mission | ActiveMissionConflict:
        start.wait()
        try:
            return dispatch(store, m)[0]
        except ActiveMissionConflict as exc:
            return exc

    with ThreadPoolExecutor(len(missions)) as pool:
        results = list(pool.map(one, missions))
    return [r for r in results if isinstance(r, Mission)], [r for r in results if isinstance(r, Exception)]


def test_dispatch_writes_mission_incident_and_audit_together(store: Store) -> None:
    incident_id = new_incident(store)
    m, incident = dispatch(store, mission(incident_id, opaque_id=4_000_000_000))
    assert m.id is not None and incident.status == "dispatched"
    assert store.get_incident(incident_id).status == "dispatched"
    assert store.get_mission(m.id).opaque_id == 4_000_000_000
    [entry] = store.audit_log(target_type="mission", target_id=str(m.id))
    assert (entry.actor, entry.action, entry.detail) == (
        "kim",
        "mission.dispatch",
        {"drone_id": "dd-01", "eta_s": 42.0},
    )
    assert store.active_missions() == {"dd-01": m.id}


def test_dispatch_to_a_missing_incident_writes_nothing(store: Store) -> None:
    with pytest.raises(NotFound, match="incident 999"):
        dispatch(store, mission(999))
    assert store.counts() == {"incidents": 0, "missions": 0, "audit": 0}


def test_a_failing_audit_entry_undoes_the_dispatch(store: Store) -> None:
    incident_id = new_incident(store)
    with pytest.raises((TypeError, StatementError)):  # not JSON: the audit row cannot be written
        store.dispatch_mission(mission(incident_id), actor="kim", audit_detail={"bad": object()})
    assert store.get_incident(incident_id).status == "open"
    assert store.list_missions() == [] and store.audit_log() == []


def test_second_active_mission_is_refused_per_drone_and_per_incident(store: Store) -> None:
    a, b = new_incident(store, 1), new_incident(store, 2)
    first, _ = dispatch(store, mission(a, "dd-01"))
    with pytest.raises(ActiveMissionConflict, match=f"drone dd-01 already flies mission {first.id}") as drone:
        dispatch(store, mission(b, "dd-01"))
    assert (drone.value.kind, drone.value.key, drone.value.mission_id) == ("drone", "dd-01", first.id)
    with pytest.raises(ActiveMissionConflict) as incident:
        dispatch(store, mission(a, "dd-02"))
    assert (incident.value.kind, incident.value.key, incident.value.mission_id) == ("incident", a, first.id)
    assert store.get_incident(b).status == "open"  # the refused dispatch left it alone
    assert [e.action for e in store.audit_log()] == ["mission.dispatch"]

    # once the mission has ended, the drone and the incident are free again
    store.record_transition(first.id, {"state": "completed"}, actor="system", action="mission.state", detail={})
    second, _ = dispatch(store, mission(b, "dd-01"))
    third, _ = dispatch(store, mission(a, "dd-02"))
    assert store.active_missions() == {"dd-01": second.id, "dd-02": third.id}


def test_concurrent_dispatches_of_one_drone_let_exactly_one_through(store: Store) -> None:
    incidents = [new_incident(store, n) for n in range(CALLERS)]
    won, refused = race(store, [mission(i, "dd-01") for i in incidents])
    assert len(won) == 1 and len(refused) == CALLERS - 1
    assert {(e.kind, e.key, e.mission_id) for e in refused} == {("drone", "dd-01", won[0].id)}
    assert store.active_missions() == {"dd-01": won[0].id}
    assert [i.id for i in store.list_incidents(status="dispatched")] == [won[0].incident_id]
    assert len(store.audit_log(target_type="mission")) == 1


def test_concurrent_dispatches_to_one_incident_let_exactly_one_through(store: Store) -> None:
    incident_id = new_incident(store)
    won, refused = race(store, [mission(incident_id, f"dd-{n:02d}") for n in range(CALLERS)])
    assert len(won) == 1 and len(refused) == CALLERS - 1
    assert {(e.kind, e.key, e.mission_id) for e in refused} == {("incident", incident_id, won[0].id)}
    assert [m.id for m in store.list_missions(active=True)] == [won[0].id]
    assert len(store.audit_log(target_type="mission")) == 1


def test_record_transition_changes_mission_and_audits_it(store: Store) -> None:
    m, _ = dispatch(store, mission(new_incident(store)))
    before = store.get_mission(m.id).updated_at
    fields = {"state": "uploading", "recording_path": "var/recordings/m1.mp4", "opaque_id": 3_000_000_000}
    changed = store.record_transition(
        m.id, fields, actor="system", action="mission.state", detail={"old": "planned", "new": "uploading"}
    )
    for got in (changed, store.get_mission(m.id)):
        assert (got.state, got.recording_path, got.opaque_id) == ("uploading", "var/recordings/m1.mp4", 3_000_000_000)
    stored = store.get_mission(m.id)
    assert stored.updated_at >= before
    latest = store.audit_log(target_type="mission", target_id=str(m.id))[0]
    assert (latest.actor, latest.action, latest.detail) == (
        "system",
        "mission.state",
        {"old": "planned", "new": "uploading"},
    )


def test_record_transition_is_all_or_nothing(store: Store) -> None:
    m, _ = dispatch(store, mission(new_incident(store)))
    with pytest.raises((TypeError, StatementError)):  # the audit row fails: the mission must not change either
        store.record_transition(m.id, {"state": "enroute"}, actor="system", action="mission.state", detail={"x": {1}})
    assert store.get_mission(m.id).state == "planned"
    assert len(store.audit_log()) == 1
    with pytest.raises(NotFound, match="mission 999"):
        store.record_transition(999, {"state": "failed"}, actor="system", action="mission.state", detail={})
    assert len(store.audit_log()) == 1


def test_record_transition_cannot_make_a_second_active_mission(store: Store) -> None:
    incident_id = new_incident(store)
    old, _ = dispatch(store, mission(incident_id, "dd-01"))
    store.record_transition(old.id, {"state": "failed"}, actor="system", action="mission.state", detail={})
    new, _ = dispatch(store, mission(new_incident(store, 2), "dd-01"))
    with pytest.raises(ActiveMissionConflict) as conflict:
        store.record_transition(old.id, {"state": "planned"}, actor="kim", action="mission.state", detail={})
    assert (conflict.value.kind, conflict.value.mission_id) == ("drone", new.id)
    assert store.get_mission(old.id).state == "failed"
    entries = store.audit_log(target_type="mission", target_id=str(old.id))
    assert [(e.actor, e.action) for e in entries] == [("system", "mission.state"), ("kim", "mission.dispatch")]


def test_maintenance_round_trip(store: Store) -> None:
    assert store.maintenance_flags() == {}
    store.set_maintenance("dd-01", True)
    store.set_maintenance("dd-02", True)
    store.set_maintenance("dd-01", False)
    store.set_maintenance("dd-02", True)  # setting it again is no error
    assert store.maintenance_flags() == {"dd-01": False, "dd-02": True}


def test_maintenance_and_active_missions_survive_a_restart(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine)
    store.set_maintenance("dd-03", True)
    m, _ = dispatch(store, mission(new_incident(store), "dd-01"))
    engine.dispose()
    again: Engine = make_engine(database_url)
    try:
        migrate(again)
        assert Store(again).maintenance_flags() == {"dd-03": True}
        assert Store(again).active_missions() == {"dd-01": m.id}
    finally:
        again.dispose()
