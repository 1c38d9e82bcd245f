"""Revision 0003 upgrades a database full of real data: nothing lost, the new rules hold after."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, Connection, DateTime, Engine, bindparam, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from dronedispatch.store.db import alembic_config, make_engine, migrate
from dronedispatch.store.models import Drone, Mission
from dronedispatch.store.repo import ActiveMissionConflict, Store, as_utc

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
SUPERSEDED = "superseded by mission {} when at most one active mission per drone/incident became a rule"
TABLES = ("users", "incidents", "incident_reports", "missions", "evidence", "audit_log")


def sql(conn: Connection, statement: str, **params: Any) -> Any:
    """Plain SQL; JSON and timestamps bound with their column types so both databases take them."""
    stmt = text(statement)
    for name, value in params.items():
        if isinstance(value, dict | list):
            stmt = stmt.bindparams(bindparam(name, type_=JSON))
        elif isinstance(value, datetime):
            stmt = stmt.bindparams(bindparam(name, type_=DateTime(timezone=True)))
    return conn.execute(stmt, params)


def insert_mission(conn: Connection, mid: int, incident_id: int, drone_id: str, state: str, **extra: Any) -> None:
    row = {
        "id": mid,
        "incident_id": incident_id,
        "drone_id": drone_id,
        "sysid": int(drone_id[-2:]),
        "state": state,
        "reason": None,
        "template": "orbit",
        "params": {"radius_m": 60},
        "items": [{"seq": 0, "command": 22, "lat": 37.39, "lon": 126.63, "alt": 40.0}],
        "on_scene_seq": 2,
        "opaque_id": None,
        "created_by": "kim",
        "created_at": T0 + timedelta(minutes=mid),
        "updated_at": T0 + timedelta(minutes=mid),
        "ended_at": None,
    } | extra
    sql(
        conn,
        "INSERT INTO missions (id, incident_id, drone_id, sysid, state, reason, template, params, items,"
        " on_scene_seq, opaque_id, created_by, created_at, updated_at, ended_at) VALUES (:id, :incident_id,"
        " :drone_id, :sysid, :state, :reason, :template, :params, :items, :on_scene_seq, :opaque_id, :created_by,"
        " :created_at, :updated_at, :ended_at)",
        **row,
    )


def audit(conn: Connection, aid: int, action: str, target_type: str, target_id: str, **detail: Any) -> None:
    sql(
        conn,
        "INSERT INTO audit_log (id, at, actor, action, target_type, target_id, detail)"
        " VALUES (:id, :at, :actor, :action, :target_type, :target_id, :detail)",
        id=aid,
        at=T0 + timedelta(hours=aid),
        actor="admin",
        action=action,
        target_type=target_type,
        target_id=target_id,
        detail=detail,
    )


def fill_at_0002(conn: Connection) -> None:
    """A database as revision 0002 knew it, with what 0003 must repair."""
    for uid, name, role in ((1, "admin", "admin"), (2, "kim", "pilot")):
        sql(
            conn,
            "INSERT INTO users (id, username, password_hash, role, disabled, created_at)"
            " VALUES (:id, :u, :h, :r, :d, :at)",
            id=uid,
            u=name,
            h="$argon2id$v=19$m=65536,t=3,p=4$abc$def",
            r=role,
            d=False,
            at=T0,
        )
    for iid in (1, 2, 3, 4):
        sql(
            conn,
            "INSERT INTO incidents (id, category, severity, status, lat, lon, area, camera_id, source, description,"
            " report_count, created_at, updated_at) VALUES (:id, 'fire', 3, 'dispatched', 37.39, 126.63, :area,"
            " 'cam-1', 'webhook', :d, 2, :at, :at)",
            id=iid,
            area={"type": "Polygon", "coordinates": [[[126.6, 37.3], [126.7, 37.3], [126.7, 37.4], [126.6, 37.3]]]},
            d=f"연기 {iid}",
            at=T0,
        )
        for n in (1, 2):
            sql(
                conn,
                "INSERT INTO incident_reports (incident_id, source, source_ref, category, severity, lat, lon,"
                " description, observed_at, received_at, raw) VALUES (:iid, 'webhook', :ref, 'fire', 3, 37.39,"
                " 126.63, 'smoke', :at, :at, :raw)",
                iid=iid,
                ref=f"r-{iid}-{n}",
                at=T0,
                raw={"payload": [iid, n], "텍스트": "연기"},
            )
    insert_mission(conn, 1, 1, "dd-01", "enroute", opaque_id=2_000_000_000)  # superseded by 2 (same drone)
    insert_mission(conn, 2, 2, "dd-01", "planned")
    insert_mission(conn, 3, 3, "dd-02", "completed", ended_at=T0 + timedelta(hours=1))
    insert_mission(conn, 4, 3, "dd-03", "on_scene")  # superseded by 5 (same incident)
    insert_mission(conn, 5, 3, "dd-04", "returning")
    insert_mission(conn, 6, 4, "dd-05", "failed", reason="link lost", ended_at=T0 + timedelta(hours=2))
    for eid, mid in ((1, 3), (2, 3), (3, 1)):
        sql(
            conn,
            "INSERT INTO evidence (id, mission_id, incident_id, kind, path, media_type, sha256, size_bytes, created_at)"
            " VALUES (:id, :mid, :iid, 'recording', :p, 'video/mp4', :sha, :size, :at)",
            id=eid,
            mid=mid,
            iid=3 if mid == 3 else 1,
            p=f"var/recordings/m{mid}-{eid}.mp4",
            sha="ab" * 32,
            size=5_000_000_000,
            at=T0,
        )
    audit(conn, 1, "drone.maintenance", "drone", "dd-01", maintenance=True)
    audit(conn, 2, "drone.maintenance", "drone", "dd-02", maintenance=True)
    audit(conn, 3, "drone.maintenance", "drone", "dd-01", maintenance=False)  # newest for dd-01
    audit(conn, 4, "mission.dispatch", "mission", "2", incident_id=2, drone_id="dd-01")
    audit(conn, 5, "other.action", "drone", "dd-03", maintenance=True)  # not a maintenance toggle
    audit(conn, 6, "drone.maintenance", "user", "dd-04", maintenance=True)  # not a drone
    audit(conn, 7, "drone.maintenance", "drone", "dd-02", maintenance=True)  # newest for dd-02
    if conn.dialect.name == "postgresql":  # explicit ids leave the sequences behind
        for table in TABLES:
            sql(conn, f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")


def counts(conn: Connection) -> dict[str, int]:
    return {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in TABLES}


@pytest.fixture
def old_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    command.upgrade(alembic_config(engine), "0002")
    with engine.begin() as conn:
        fill_at_0002(conn)
    yield engine
    engine.dispose()


def test_upgrade_keeps_every_row_and_repairs_what_the_new_rules_refuse(old_engine: Engine) -> None:
    with old_engine.connect() as conn:
        before = counts(conn)
        reports_before = conn.execute(text("SELECT id, source_ref FROM incident_reports ORDER BY id")).all()
    migrate(old_engine)
    store = Store(old_engine)

    with old_engine.connect() as conn:
        after = counts(conn)
        head = ScriptDirectory.from_config(alembic_config(old_engine)).get_current_head()
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head
        assert conn.execute(text("SELECT id, source_ref FROM incident_reports ORDER BY id")).all() == reports_before
    assert after == before | {"audit_log": before["audit_log"] + 2}  # one entry per repaired mission

    # every row reads back through the models
    assert [u.username for u in store.list_users()] == ["admin", "kim"]
    assert store.get_incident(1).area["type"] == "Polygon" and store.get_incident(1).description == "연기 1"
    assert store.incident_reports(4)[1].raw == {"payload": [4, 2], "텍스트": "연기"}
    assert [e.size_bytes for e in store.list_evidence(mission_id=3)] == [5_000_000_000, 5_000_000_000]
    m1 = store.get_mission(1)
    assert m1.opaque_id == 2_000_000_000 and m1.items[0]["alt"] == 40.0 and m1.recording_path is None

    # maintenance comes from the newest toggle per drone; other actions and targets are not toggles
    assert store.maintenance_flags() == {"dd-01": False, "dd-02": True}
    with store.session() as s:
        assert as_utc(s.get_one(Drone, "dd-02").updated_at) == T0 + timedelta(hours=7)

    # the older of two active missions per drone / per incident failed; the newest keeps flying
    states = {m.id: (m.state, m.reason) for m in store.list_missions()}
    assert states == {
        1: ("failed", SUPERSEDED.format(2)),
        2: ("planned", None),
        3: ("completed", None),
        4: ("failed", SUPERSEDED.format(5)),
        5: ("returning", None),
        6: ("failed", "link lost"),
    }
    assert store.get_mission(1).ended_at is not None and store.get_mission(4).ended_at is not None
    assert as_utc(store.get_mission(6).ended_at) == T0 + timedelta(hours=2)  # untouched
    repaired = store.audit_log(target_type="mission", target_id="4")
    assert [(e.action, e.detail["old"], e.detail["new"]) for e in repaired] == [("mission.state", "on_scene", "failed")]
    assert store.active_missions() == {"dd-01": 2, "dd-04": 5}

    # a PX4 mission CRC beyond a signed 32-bit integer is stored and read back
    assert store.update_mission(2, opaque_id=4_000_000_000).opaque_id == 4_000_000_000
    assert store.get_mission(2).opaque_id == 4_000_000_000

    # the rule holds in the database itself, for plain SQL too
    with pytest.raises(IntegrityError), old_engine.begin() as conn:
        insert_mission(conn, 100, 4, "dd-01", "launching")
    with pytest.raises(IntegrityError), old_engine.begin() as conn:
        insert_mission(conn, 101, 3, "dd-09", "planned")
    with old_engine.begin() as conn:  # ended missions are not limited
        insert_mission(conn, 102, 3, "dd-04", "completed")
        insert_mission(conn, 103, 3, "dd-04", "aborted")
    with pytest.raises(ActiveMissionConflict) as conflict:
        store.dispatch_mission(
            Mission(incident_id=4, drone_id="dd-01", sysid=1, template="orbit", created_by="kim"),
            actor="kim",
            audit_detail={},
        )
    assert (conflict.value.kind, conflict.value.key, conflict.value.mission_id) == ("drone", "dd-01", 2)

    migrate(old_engine)  # idempotent on the upgraded database


def test_upgrade_of_an_empty_database_at_0002(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        command.upgrade(alembic_config(engine), "0002")
        migrate(engine)
        assert Store(engine).maintenance_flags() == {}
        assert {"drones", "missions"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrations_and_models_agree(engine: Engine) -> None:
    """Autogenerate finds nothing to do after the migrations: the models declare what they built."""
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    assert diffs == []
    indexes = {ix["name"]: ix for ix in inspect(engine).get_indexes("missions")}
    for name, column in (("uq_missions_active_drone", "drone_id"), ("uq_missions_active_incident", "incident_id")):
        assert indexes[name]["unique"] and indexes[name]["column_names"] == [column]
        where = next(iter(indexes[name]["dialect_options"].values()))
        assert "planned" in str(where) and "returning" in str(where) and "completed" not in str(where)


def test_downgrade_to_0002_and_back_keeps_the_data(old_engine: Engine) -> None:
    cfg = alembic_config(old_engine)
    migrate(old_engine)
    Store(old_engine).update_mission(2, recording_path="var/recordings/m2.mp4")
    with old_engine.connect() as conn:
        before = counts(conn)
    command.downgrade(cfg, "0002")
    assert "drones" not in set(inspect(old_engine).get_table_names())
    assert "recording_path" not in {c["name"] for c in inspect(old_engine).get_columns("missions")}
    with old_engine.connect() as conn:
        assert counts(conn) == before
    migrate(old_engine)
    store = Store(old_engine)
    assert store.maintenance_flags() == {"dd-01": False, "dd-02": True}  # backfilled again from the audit log
    assert store.get_mission(2).recording_path is None
    assert len(store.list_evidence(mission_id=3)) == 2
