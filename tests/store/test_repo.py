from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

from dronedispatch.domain.incidents import Category, Report, Severity
from dronedispatch.store.db import make_engine, migrate
from dronedispatch.store.models import Mission
from dronedispatch.store.repo import NotFound, Store, as_utc
from dronedispatch.store.users import hash_password, verify_password

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def report(**kw: object) -> Report:
    base: dict[str, object] = {
        "source": "webhook",
        "source_ref": "r-1",
        "category": Category.FIRE,
        "severity": Severity.SEVERE,
        "lat": 37.3926,
        "lon": 126.6378,
        "observed_at": T0,
        "description": "smoke",
        "raw": {"payload": [1, 2, 3], "텍스트": "연기"},
    }
    base.update(kw)
    return Report.model_validate(base)


def test_migration_creates_every_table_and_is_idempotent(engine) -> None:  # type: ignore[no-untyped-def]
    migrate(engine)  # a second run changes nothing and does not fail
    tables = set(inspect(engine).get_table_names())
    assert {"users", "incidents", "incident_reports", "missions", "audit_log", "alembic_version"} <= tables


def test_incident_keeps_every_report_and_raw_payload(store: Store) -> None:
    inc = store.create_incident(report(), 37.3926, 126.6378)
    merged = store.merge_report(inc.id, report(source_ref="r-2", severity=Severity.EXTREME, description="flames"))
    assert merged.report_count == 2
    assert merged.severity == Severity.EXTREME
    assert "smoke" in merged.description and "flames" in merged.description
    reports = store.incident_reports(inc.id)
    assert [r.source_ref for r in reports] == ["r-1", "r-2"]
    assert reports[0].raw == {"payload": [1, 2, 3], "텍스트": "연기"}
    assert as_utc(reports[0].observed_at) == T0


def test_severity_never_goes_down_on_merge(store: Store) -> None:
    inc = store.create_incident(report(severity=Severity.EXTREME), 37.39, 126.63)
    merged = store.merge_report(inc.id, report(severity=Severity.MINOR, source_ref="r-9"))
    assert merged.severity == Severity.EXTREME


def test_unknown_ids_raise_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="incident 999"):
        store.get_incident(999)
    with pytest.raises(NotFound, match="mission 999"):
        store.get_mission(999)
    with pytest.raises(NotFound):
        store.merge_report(999, report())
    with pytest.raises(NotFound):
        store.update_mission(999, state="failed")


def test_list_filters_and_pagination(store: Store) -> None:
    ids = [store.create_incident(report(source_ref=f"r{i}"), 37.39, 126.63).id for i in range(5)]
    store.update_incident(ids[0], status="closed")
    assert len(store.list_incidents(limit=2)) == 2
    assert {i.id for i in store.list_incidents(status="closed")} == {ids[0]}
    assert {i.id for i in store.open_incidents()} == set(ids[1:])
    page1 = store.list_incidents(limit=3, offset=0)
    page2 = store.list_incidents(limit=3, offset=3)
    assert not {i.id for i in page1} & {i.id for i in page2}


def test_missions_active_filter_and_items_round_trip(store: Store) -> None:
    inc = store.create_incident(report(), 37.39, 126.63)
    items = [
        {
            "seq": 0,
            "command": 22,
            "frame": 6,
            "lat": 37.39,
            "lon": 126.63,
            "alt": 40.0,
            "params": [0.0, 0.0, 0.0, None],
            "autocontinue": True,
        }
    ]
    m = store.add_mission(
        Mission(incident_id=inc.id, drone_id="dd-01", sysid=1, template="hover_roi", items=items, created_by="operator")
    )
    assert store.active_mission_for_drone("dd-01").id == m.id
    store.update_mission(m.id, state="completed", ended_at=T0 + timedelta(minutes=5))
    assert store.active_mission_for_drone("dd-01") is None
    assert [x.id for x in store.list_missions(active=False)] == [m.id]
    assert store.get_mission(m.id).items == items


def test_audit_log_is_append_only_and_ordered(store: Store) -> None:
    store.audit("operator", "incident.create", "incident", 1, lat=37.0)
    store.audit("pilot", "mission.command.rtl", "mission", 7)
    log = store.audit_log()
    assert [e.action for e in log] == ["mission.command.rtl", "incident.create"]
    assert log[1].detail == {"lat": 37.0}
    assert [e.actor for e in store.audit_log(target_type="mission", target_id="7")] == ["pilot"]


def test_users_and_passwords(store: Store) -> None:
    store.upsert_user("kim", hash_password("correct horse"), "pilot")
    user = store.get_user("kim")
    assert user is not None and user.role == "pilot"
    assert verify_password(user.password_hash, "correct horse")
    assert not verify_password(user.password_hash, "wrong")
    assert not verify_password("not-a-hash", "anything")
    store.upsert_user("kim", hash_password("new password!"), "admin")
    assert store.get_user("kim").role == "admin"
    assert len(store.list_users()) == 1


def test_data_survives_a_restart(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    inc = Store(engine).create_incident(report(), 37.39, 126.63)
    Store(engine).audit("operator", "incident.create", "incident", inc.id)
    engine.dispose()
    engine2 = make_engine(database_url)
    migrate(engine2)
    store2 = Store(engine2)
    assert store2.get_incident(inc.id).category == "fire"
    assert store2.counts() == {"incidents": 1, "missions": 0, "audit": 1}
    engine2.dispose()


def test_latest_audit_detail_per_target(store: Store) -> None:
    store.audit("admin", "drone.maintenance", "drone", "dd-01", maintenance=True)
    store.audit("admin", "drone.maintenance", "drone", "dd-02", maintenance=True)
    store.audit("admin", "drone.maintenance", "drone", "dd-01", maintenance=False)
    store.audit("admin", "other.action", "drone", "dd-03", maintenance=True)
    assert store.latest_audit_detail("drone.maintenance", "drone") == {
        "dd-01": {"maintenance": False},
        "dd-02": {"maintenance": True},
    }


def test_open_incidents_come_with_their_reports_in_one_read(store: Store) -> None:
    a = store.create_incident(report(source_ref="a1"), 37.39, 126.63)
    b = store.create_incident(report(source_ref="b1", category=Category.CRIME), 37.40, 126.64)
    closed = store.create_incident(report(source_ref="c1"), 37.41, 126.65)
    assert a.id and b.id and closed.id
    store.merge_report(a.id, report(source_ref="a2"))
    store.update_incident(closed.id, status="closed")
    got = {inc.id: [r.source_ref for r in reports] for inc, reports in store.open_incidents_with_reports()}
    assert got == {a.id: ["a1", "a2"], b.id: ["b1"]}
    assert {i.id for i in store.open_incidents()} == set(got)
