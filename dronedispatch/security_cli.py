"""`dronedispatch audit verify` and `dronedispatch ingest-keys ...`: run against the database directly.

The database is ``--database-url``, else DD_DATABASE_URL, else the service's default. Neither command
needs the rest of the settings (a secret key, the city files), so they are not read.
"""

from __future__ import annotations

import os
import sys

from sqlalchemy.exc import SQLAlchemyError

from dronedispatch.app.errors import ServiceError
from dronedispatch.app.ingest_keys import IngestKeyService
from dronedispatch.settings import Settings
from dronedispatch.store.audit_chain import verify_chain
from dronedispatch.store.db import make_engine, migrate
from dronedispatch.store.ingest_keys import IngestKeyStore
from dronedispatch.store.repo import NotFound


def database_url(given: str | None) -> str:
    return given or os.environ.get("DD_DATABASE_URL") or str(Settings.model_fields["database_url"].default)


def audit_verify_cli(url: str | None) -> int:
    """Exit 0 when the audit log's hash chain holds, 1 naming the first bad entry, 2 when it cannot be read."""
    engine = make_engine(database_url(url))
    try:
        report = verify_chain(engine)
    except SQLAlchemyError as exc:
        print(f"dronedispatch: cannot read the audit log: {exc.__class__.__name__}: {exc.args[0] if exc.args else ''}",
              file=sys.stderr)  # fmt: skip
        return 2
    finally:
        engine.dispose()
    if not report.holds:
        print(f"BROKEN at entry {report.bad_id}: {report.problem}")
        print(f"the chain holds for the {report.entries} entries before it")
        return 1
    print(f"the audit log's hash chain holds: {report.entries} entries, the last {report.last_id} "
          f"with hash {report.last_hash}")  # fmt: skip
    return 0


def _service(url: str | None) -> IngestKeyService:
    engine = make_engine(database_url(url))
    migrate(engine)
    return IngestKeyService(IngestKeyStore(engine))


def ingest_keys_add_cli(url: str | None, source: str, actor: str) -> int:
    try:
        new = _service(url).create(source, actor)
    except ServiceError as exc:
        print(f"dronedispatch: {exc.reason}", file=sys.stderr)
        return 2
    print(f"ingest key {new.key.id} for source {source!r} added; the key (shown only now):", file=sys.stderr)
    print(new.secret)
    return 0


def ingest_keys_list_cli(url: str | None) -> int:
    keys = _service(url).all_keys()
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M} by {k.revoked_by}" if k.revoked_at else "active"
        used = f"last used {k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never used"
        print(f"{k.id}\t{k.source}\t{state}\tadded {k.created_at:%Y-%m-%d %H:%M} by {k.created_by}\t{used}")
    if not keys:
        print("no ingest keys", file=sys.stderr)
    return 0


def ingest_keys_revoke_cli(url: str | None, key_id: int, actor: str) -> int:
    try:
        key = _service(url).revoke(key_id, actor)
    except NotFound as exc:
        print(f"dronedispatch: {exc}", file=sys.stderr)
        return 2
    print(f"ingest key {key.id} of source {key.source!r} revoked")
    return 0
