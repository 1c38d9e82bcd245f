"""The audit log's hash chain: every way of appending chains, every way of tampering is named."""

from __future__ import annotations

import itertools
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, event, text
from sqlmodel import Session, select

from dronedispatch.cli import main
from dronedispatch.domain.incidents import Category, Report, Severity
from dronedispatch.store.audit_chain import GENESIS, entry_hash, verify_chain
from dronedispatch.store.db import alembic_config, make_engine, migrate
from dronedispatch.store.models import AuditEntry, Evidence, Incident
from dronedispatch.store.repo import Store

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
COLUMNS = "id, at, actor, action, target_type, target_id, detail, prev_hash, entry_hash"


def report(lat: float = 37.39, lon: float = 126.63) -> Report:
    return Report(source="webhook", category=Category.FIRE, severity=Severity.SEVERE, lat=lat, lon=lon,
                  observed_at=T0, description="smoke")  # fmt: skip


def fill(store: Store) -> None:
    """Entries by every way the service appends: audit(), a split, evidence, a session of its own."""
    incident = store.create_incident(report(), 37.39, 126.63)
    assert incident.id is not None
    store.merge_report(incident.id, report(37.391, 126.631))
    store.audit("kim", "incident.note", "incident", incident.id, text="ünïcode", n=1.5, nested={"b": [1, 2]})
    second = store.incident_reports(incident.id)[1]
    assert second.id is not None
    store.split_report(incident.id, second.id, actor="kim")
    store.add_evidence(Evidence(incident_id=incident.id, kind="snapshot", path="/x.jpg", media_type="image/jpeg",
                                sha256="ab" * 32, size_bytes=3), camera_id="cam-1")  # fmt: skip
    with Session(store.engine) as s:
        s.add(AuditEntry(actor="a", action="one", target_type="t", target_id="1"))
        s.add(AuditEntry(actor="a", action="two", target_type="t", target_id="2"))
        s.commit()
    store.audit("kim", "incident.close", "incident", incident.id)


def rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(f"SELECT {COLUMNS} FROM audit_log ORDER BY id"))]


def test_every_append_is_chained_and_each_kind_of_tampering_is_named(store: Store, engine: Engine) -> None:
    fill(store)
    entries = store.audit_log(limit=100)[::-1]
    assert [e.action for e in entries] == ["incident.note", "incident.split", "evidence.snapshot", "one", "two",
                                           "incident.close"]  # fmt: skip
    evidence = entries[2]
    assert evidence.detail["sha256"] == "ab" * 32 and evidence.detail["camera_id"] == "cam-1"
    assert entries[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.entry_hash for a, b in itertools.pairwise(entries))
    ok = verify_chain(engine, page=2)  # pages smaller than the log: the walk crosses page boundaries
    assert ok.holds and ok.entries == 6 and ok.last_id == entries[-1].id
    ids = [e.id for e in entries if e.id is not None]

    saved = {r["id"]: r for r in rows(engine)}

    # a detail edited in place (the evidence's hash swapped): that entry is named
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET detail = :d WHERE id = :i"),
                     {"d": '{"sha256": "' + "cd" * 32 + '"}', "i": ids[2]})  # fmt: skip
    bad = verify_chain(engine)
    assert not bad.holds and bad.bad_id == ids[2] and "changed" in (bad.problem or "")
    assert bad.entries == 2  # the two before it held
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET detail = :d WHERE id = :i"),
                     {"d": as_json(saved[ids[2]]["detail"]), "i": ids[2]})  # fmt: skip
    assert verify_chain(engine).holds  # put back as it was

    # a row removed: the entry after it no longer links
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id = :i"), {"i": ids[3]})
    bad = verify_chain(engine)
    assert bad.bad_id == ids[4] and "removed" in (bad.problem or "")
    insert_row(engine, saved[ids[3]])
    assert verify_chain(engine).holds

    # a row inserted with a forged hash: named
    forged = saved[ids[-1]] | {"id": ids[-1] + 5, "prev_hash": entries[-1].entry_hash, "entry_hash": "f" * 64}
    insert_row(engine, forged)
    bad = verify_chain(engine)
    assert bad.bad_id == ids[-1] + 5 and "forged" in (bad.problem or "")

    # ... one whose hash is right but the head never saw it (appended outside the service): named
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id = :i"), {"i": ids[-1] + 5})
    e = entries[-1]
    forged["entry_hash"] = entry_hash(ids[-1] + 5, e.at, e.actor, e.action, e.target_type, e.target_id, {"x": 1},
                                      e.entry_hash)  # fmt: skip
    forged["detail"] = {"x": 1}
    insert_row(engine, forged)
    bad = verify_chain(engine)
    assert bad.bad_id == ids[-1] + 5 and "inserted" in (bad.problem or "")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id = :i"), {"i": ids[-1] + 5})
    assert verify_chain(engine).holds

    # the last entry removed: the chain head still names it
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id = :i"), {"i": ids[-1]})
    bad = verify_chain(engine)
    assert bad.bad_id == ids[-1] and "removed" in (bad.problem or "")


def as_json(detail: Any) -> str | None:
    """A detail as read with plain SQL (text on SQLite, parsed on PostgreSQL) written back as JSON text."""
    return detail if isinstance(detail, str) or detail is None else json.dumps(detail)


def insert_row(engine: Engine, row: dict[str, Any]) -> None:
    row = row | {"detail": as_json(row["detail"])}
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO audit_log ({COLUMNS}) VALUES (:id, :at, :actor, :action, :target_type,"
                          " :target_id, :detail, :prev_hash, :entry_hash)"), row)  # fmt: skip


def test_concurrent_appends_from_several_engines_keep_the_chain(database_url: str, store: Store) -> None:
    """Several nodes (an engine each) and threads append at once: one chain, nothing lost."""
    incident = store.create_incident(report(), 37.39, 126.63)
    engines = [make_engine(database_url) for _ in range(3)]
    stores = [Store(e) for e in engines]
    per_thread, threads, errors = 12, 6, []
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        s = stores[n % len(stores)]
        start.wait()
        try:
            for i in range(per_thread):
                if i % 3 == 2:
                    e = Evidence(incident_id=incident.id, kind="snapshot", path=f"/{n}-{i}.jpg",
                                 media_type="image/jpeg", sha256=f"{n:02d}{i:02d}" * 16, size_bytes=i)  # fmt: skip
                    s.add_evidence(e)
                else:
                    s.audit(f"node{n}", "test.append", "thread", n, i=i)
        except Exception as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for e in engines:
        e.dispose()
    assert errors == []
    result = verify_chain(store.engine)
    assert result.holds, result.problem
    assert result.entries == threads * per_thread
    appended = store.audit_log(limit=1000)
    assert sum(e.action == "evidence.snapshot" for e in appended) == threads * per_thread // 3
    assert sorted(e.detail["i"] for e in appended if e.target_id == "0") == [i for i in range(per_thread) if i % 3 != 2]


def test_migration_chains_a_log_full_of_entries(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        command.upgrade(alembic_config(engine), "0006")
        n = 2300  # more than two of the migration's pages
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO audit_log (id, at, actor, action, target_type, target_id, detail)"
                     " VALUES (:id, :at, :actor, :action, :target_type, :target_id, :detail)"),
                [{"id": i, "at": (T0 + timedelta(seconds=i)).replace(tzinfo=None), "actor": "kim",
                  "action": "mission.dispatch", "target_type": "mission", "target_id": str(i),
                  "detail": json.dumps({"i": i, "x": [1.25, "é"]})} for i in range(1, n + 1)],
            )  # fmt: skip
        migrate(engine)
        result = verify_chain(engine)
        assert result.holds, result.problem
        assert (result.entries, result.last_id) == (n, n)
        store = Store(engine)
        store.audit("kim", "after.migration", "x", 1)
        (newest,) = store.audit_log(limit=1)
        assert newest.prev_hash == result.last_hash and newest.id == n + 1
        assert verify_chain(engine).entries == n + 1
        # back to 0006 and up again: chained again, the same hashes
        command.downgrade(alembic_config(engine), "0006")
        migrate(engine)
        again = verify_chain(engine)
        assert again.holds and again.last_hash == newest.entry_hash
    finally:
        engine.dispose()


def test_audit_verify_command(database_url: str, store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    fill(store)
    assert main(["audit", "verify", "--database-url", database_url]) == 0
    assert "hash chain holds: 6 entries" in capsys.readouterr().out
    (entry,) = [e for e in store.audit_log(limit=100) if e.action == "incident.split"]
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'someone else' WHERE id = :i"), {"i": entry.id})
    assert main(["audit", "verify", "--database-url", database_url]) == 1
    assert f"BROKEN at entry {entry.id}: entry {entry.id} was changed" in capsys.readouterr().out


def test_the_chain_head_is_the_last_lock_a_transaction_takes(store: Store, engine: Engine) -> None:
    """A transaction's other writes go out before its audit entry locks the head: a transaction holding
    the head waits on no row lock, so it cannot deadlock with one that locked a row first (split_report)."""
    incident = store.create_incident(report(), 37.39, 126.63)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()).lower())

    event.listen(engine, "before_cursor_execute", record)
    try:
        with Session(engine) as s:
            s.add(AuditEntry(actor="kim", action="incident.note", target_type="incident", target_id=str(incident.id)))
            row = s.get(Incident, incident.id)
            assert row is not None
            row.description = "changed with its entry"
            s.add(row)
            s.commit()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    update_at = next(i for i, st in enumerate(statements) if st.startswith("update incidents"))
    head_at = next(i for i, st in enumerate(statements) if "from audit_chain_head" in st)
    insert_at = next(i for i, st in enumerate(statements) if st.startswith("insert into audit_log"))
    assert update_at < head_at < insert_at
    assert verify_chain(engine).holds


def test_entries_held_back_from_an_autoflush_leave_with_a_rollback(store: Store, engine: Engine) -> None:
    with Session(engine) as s:
        s.add(AuditEntry(actor="kim", action="rolled.back", target_type="t", target_id="1"))
        s.exec(select(Incident)).all()  # an autoflush: the entry is held for the commit
        s.rollback()
        s.add(AuditEntry(actor="kim", action="kept", target_type="t", target_id="2"))
        s.commit()
    with Session(engine) as s:
        s.add(AuditEntry(actor="kim", action="never.committed", target_type="t", target_id="3"))
        s.flush()
    assert [e.action for e in store.audit_log()] == ["kept"]
    assert verify_chain(engine).holds
