"""The audit log as a hash chain: every entry carries the hash of the one before it.

``entry_hash`` is the SHA-256 of the entry's canonical form: JSON with sorted keys and no spaces of
``id``, ``at`` (UTC, ISO 8601 with microseconds and ``Z``), ``actor``, ``action``, ``target_type``,
``target_id``, ``detail`` and ``prev_hash``; the first entry's ``prev_hash`` is :data:`GENESIS`.
Changing an entry breaks its own hash; removing one breaks the link of the entry after it;
inserting one breaks the link of the entry after it, or its own hash.

Every append goes through one path: hooks on every ORM session chain the ``AuditEntry`` rows it
inserts, whoever added them, when the transaction commits. The chaining locks the one-row chain head
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's write lock, taken with ``BEGIN IMMEDIATE`` when
the transaction holds none yet), so concurrent writers on any number of nodes append one after
another. Entries are held back from any earlier flush and go out after the transaction's other
changes, so the head is the last lock a transaction takes: no transaction holding it waits on
another, and row locks taken earlier (an incident ``FOR UPDATE``) cannot deadlock with it.

The head also records the newest entry, so a log cut short at its end is caught too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, event, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, SessionTransaction

from dronedispatch.store.models import AuditChainHead, AuditEntry

GENESIS = "0" * 64
HEAD_ID = 1
_log = AuditEntry.__table__  # type: ignore[attr-defined]
_head = AuditChainHead.__table__  # type: ignore[attr-defined]


def _utc_iso(at: datetime) -> str:
    """SQLite hands timestamps back naive; every one we store is UTC."""
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def normalised(detail: Any) -> Any:
    """``detail`` as it reads back from a JSON column (tuples become lists, keys strings)."""
    return json.loads(json.dumps(detail))


def entry_hash(
    id: int,
    at: datetime,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    detail: Any,
    prev_hash: str,
) -> str:
    canonical = {
        "id": id,
        "at": _utc_iso(at),
        "actor": actor,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "detail": detail,
        "prev_hash": prev_hash,
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _hash_of_row(row: Any, prev_hash: str) -> str:
    return entry_hash(row.id, row.at, row.actor, row.action, row.target_type, row.target_id, row.detail, prev_hash)


# -- appending ---------------------------------------------------------------------------------------


def lock_head(conn: Connection) -> tuple[int, str]:
    """Take the chain's append lock for the rest of ``conn``'s transaction: (last id, last hash)."""
    if conn.dialect.name == "sqlite":
        # pysqlite opens a transaction only before a write, so one that is open holds the write lock
        if not conn.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    q = select(_head.c.last_id, _head.c.last_hash).where(_head.c.id == HEAD_ID).with_for_update()
    row = conn.execute(q).first()
    if row is None:  # a schema made without the migrations: the first append makes the head
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(
            insert(_head).values(id=HEAD_ID, last_id=0, last_hash=GENESIS).on_conflict_do_nothing(index_elements=["id"])
        )
        row = conn.execute(q).one()
    return int(row.last_id), str(row.last_hash)


def _next_id(conn: Connection, last_id: int) -> int:
    if conn.dialect.name == "postgresql":
        # under the lock the sequence hands out ids in chain order (a rolled back append leaves a gap);
        # never behind the head, should rows have been written with ids of their own (an import)
        seq = "pg_get_serial_sequence('audit_log', 'id')"
        q = text(f"SELECT setval({seq}, GREATEST(nextval({seq}), :floor))")
        return int(conn.execute(q, {"floor": last_id + 1}).scalar_one())
    return max(last_id, int(conn.execute(select(func.coalesce(func.max(_log.c.id), 0))).scalar_one())) + 1


_HELD = "dronedispatch.audit_held"  # session.info: entries held back until the commit
_CHAINING = "dronedispatch.audit_chaining"  # session.info: the commit's own flush of them


def _chain(session: Session, entries: list[AuditEntry]) -> None:
    conn = session.connection()
    last_id, last_hash = lock_head(conn)
    for e in entries:
        e.id = _next_id(conn, last_id)
        e.at = e.at.astimezone(UTC) if e.at.tzinfo else e.at.replace(tzinfo=UTC)  # SQLite keeps the clock, not the zone
        e.target_id = str(e.target_id)
        e.detail = normalised(e.detail)
        e.prev_hash = last_hash
        e.entry_hash = entry_hash(e.id, e.at, e.actor, e.action, e.target_type, e.target_id, e.detail, last_hash)
        last_id, last_hash = e.id, e.entry_hash
    conn.execute(update(_head).where(_head.c.id == HEAD_ID).values(last_id=last_id, last_hash=last_hash))


def _before_flush(session: Session, _flush_context: object, _instances: object) -> None:
    """Audit entries go out only with the commit: an earlier flush (an autoflush before a query) holds
    them back, so the head is never locked before the transaction's other writes."""
    entries = [o for o in session.new if isinstance(o, AuditEntry)]  # in the order they were added
    if not entries:
        return
    if session.info.get(_CHAINING):
        _chain(session, entries)
        return
    for e in entries:
        session.expunge(e)
    session.info.setdefault(_HELD, []).extend(entries)


def _before_commit(session: Session) -> None:
    """Flush everything else first, then the audit entries, chained: the head is the last lock taken."""
    held = session.info.pop(_HELD, [])
    pending = [o for o in session.new if isinstance(o, AuditEntry)]
    if not held and not pending:
        return
    others = bool(session.dirty or session.deleted) or len(session.new) > len(pending)
    if others or held:
        for e in pending:
            session.expunge(e)
        if others:
            session.flush()
        session.add_all(held + pending)  # in the order they were added
    session.info[_CHAINING] = True
    try:
        session.flush()
    finally:
        session.info.pop(_CHAINING, None)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # rolled back or closed: the entries held went with it
        session.info.pop(_HELD, None)


event.listen(Session, "before_flush", _before_flush)
event.listen(Session, "before_commit", _before_commit)
event.listen(Session, "after_transaction_end", _after_transaction_end)


# -- verifying ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    entries: int  # how many were checked
    last_id: int
    last_hash: str
    bad_id: int | None = None  # the first bad entry (None: the chain holds)
    problem: str | None = None

    @property
    def holds(self) -> bool:
        return self.problem is None


def _rows(engine: Engine, after: int, page: int) -> Iterator[Any]:
    """Entries after id ``after`` in id order, ``page`` at a time (a large log is never held whole)."""
    q = select(_log).order_by(_log.c.id).limit(page)
    while True:
        with engine.connect() as conn:
            rows = conn.execute(q.where(_log.c.id > after)).all()
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1].id


def _read_head(engine: Engine) -> tuple[int, str] | None:
    with engine.connect() as conn:
        row = conn.execute(select(_head.c.last_id, _head.c.last_hash).where(_head.c.id == HEAD_ID)).first()
    return (int(row.last_id), str(row.last_hash)) if row is not None else None


def verify_chain(engine: Engine, *, page: int = 1000) -> ChainReport:
    """Check every entry's hash and link in id order, then that the log ends where the head says."""
    count, last_id, last_hash = 0, 0, GENESIS
    before_last: tuple[int, str] | None = None  # the entry before the last one checked: (id, hash)

    def bad(entry_id: int, problem: str) -> ChainReport:
        return ChainReport(count, last_id, last_hash, entry_id, problem)

    while True:
        seen = count
        for row in _rows(engine, last_id, page):
            if row.entry_hash != _hash_of_row(row, row.prev_hash):
                return bad(row.id, f"entry {row.id} was changed (or inserted with a forged hash): its hash does not "
                                   "match its content")  # fmt: skip
            if row.prev_hash != last_hash:
                if before_last is not None and row.prev_hash == before_last[1]:
                    return bad(last_id, f"entry {last_id} was inserted: entry {row.id} links past it to entry "
                                        f"{before_last[0]}")  # fmt: skip
                after = f"entry {last_id}" if count else "the start of the log"
                return bad(row.id, f"entry {row.id} does not link to {after}: an entry between them was removed, "
                                   f"or entry {row.id} was inserted")  # fmt: skip
            before_last = (last_id, last_hash) if count else None
            count, last_id, last_hash = count + 1, row.id, row.entry_hash
        head = _read_head(engine)
        if head is None:
            return bad(last_id, "the chain head is missing")
        # entries appended while we read: check those too, then read the head again
        if head[0] <= last_id or count == seen:
            break
    head_id, head_hash = head
    if head_id > last_id:
        return bad(head_id, f"entry {head_id} was removed: the chain head records it, the log ends at entry {last_id}")
    if head_id < last_id:
        with engine.connect() as conn:
            extra = conn.execute(select(func.min(_log.c.id)).where(_log.c.id > head_id)).scalar_one()
        return bad(extra, f"entry {extra} was inserted: the chain head ends at entry {head_id}")
    if head_hash != last_hash:
        return bad(last_id, f"entry {last_id} was rewritten: the chain head records another hash for it")
    return ChainReport(count, last_id, last_hash)
