"""Ingest keys: rows of ``ingest_keys`` (only the SHA-256 of each key), one short transaction each.

Adding and revoking a key append their audit entry in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from dronedispatch.store.models import AuditEntry, IngestKey
from dronedispatch.store.repo import NotFound, as_utc


class IngestKeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_ingest_key(self, key: IngestKey) -> IngestKey:
        with Session(self.engine, expire_on_commit=False) as s:
            s.add(key)
            s.flush()
            s.add(AuditEntry(actor=key.created_by, action="ingest_key.add", target_type="ingest_key",
                             target_id=str(key.id), detail={"source": key.source}))  # fmt: skip
            s.commit()
            return _utc(key)

    def ingest_keys(self) -> Sequence[IngestKey]:
        with Session(self.engine, expire_on_commit=False) as s:
            return [_utc(k) for k in s.exec(select(IngestKey).order_by(col(IngestKey.id))).all()]

    def ingest_key_by_hash(self, key_sha256: str) -> IngestKey | None:
        with Session(self.engine, expire_on_commit=False) as s:
            key = s.exec(select(IngestKey).where(IngestKey.key_sha256 == key_sha256)).first()
            return _utc(key) if key is not None else None

    def revoke_ingest_key(self, key_id: int, actor: str, at: datetime) -> IngestKey:
        """Revoke the key (a second revocation keeps the first one's time and actor, and is not audited)."""
        with Session(self.engine, expire_on_commit=False) as s:
            key = s.get(IngestKey, key_id, with_for_update=True)
            if key is None:
                raise NotFound("ingest key", key_id)
            if key.revoked_at is None:
                key.revoked_at, key.revoked_by = at, actor
                s.add(key)
                s.add(AuditEntry(actor=actor, action="ingest_key.revoke", target_type="ingest_key",
                                 target_id=str(key_id), detail={"source": key.source}))  # fmt: skip
                s.commit()
            return _utc(key)

    def touch_ingest_key(self, key_id: int, at: datetime) -> None:
        with Session(self.engine) as s:
            s.exec(update(IngestKey).where(col(IngestKey.id) == key_id).values(last_used_at=at))  # type: ignore[call-overload]
            s.commit()


def _utc(key: IngestKey) -> IngestKey:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    key.created_at = as_utc(key.created_at)
    for name in ("revoked_at", "last_used_at"):
        value = getattr(key, name)
        if value is not None:
            setattr(key, name, as_utc(value))
    return key
