"""Ingest keys: each API key belongs to one ingest source, and a report it sends must be that source's.

Keys live in the database, only their SHA-256 kept (a key is 256 random bits, so a fast hash is
enough: there is nothing to guess). Every request reads its key's row, so a key revoked on one node
stops working on every node at once, and keys are added or rotated (add the new one, move the
sender, revoke the old one) without a restart. Adding and revoking are audited.

Keys given the old way (DD_INGEST_API_KEYS) still work, for any source: they predate the scoping.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from dronedispatch.app.errors import Unprocessable
from dronedispatch.store.models import IngestKey

#: The sources whose reports come in with an API key (X-API-Key): the webhook and CAP routes.
KEY_SOURCES = ("webhook", "cap")
KEY_PREFIX = "ddk_"
#: ``last_used_at`` is written at most this often per key, not on every report.
TOUCH_EVERY = timedelta(minutes=1)


class IngestKeyRepository(Protocol):
    def add_ingest_key(self, key: IngestKey) -> IngestKey: ...
    def ingest_keys(self) -> Sequence[IngestKey]: ...
    def ingest_key_by_hash(self, key_sha256: str) -> IngestKey | None: ...
    def revoke_ingest_key(self, key_id: int, actor: str, at: datetime) -> IngestKey: ...
    def touch_ingest_key(self, key_id: int, at: datetime) -> None: ...


@dataclass(frozen=True)
class NewIngestKey:
    key: IngestKey
    secret: str  # shown once, never stored


@dataclass(frozen=True)
class IngestCaller:
    """Who sent a report: a key owned by ``source``, or (``source`` None) a key from the settings."""

    key_id: int | None
    source: str | None

    def refusal(self, sources: Iterable[str]) -> str | None:
        """Why reports of ``sources`` may not come with this key, or None when they may."""
        if self.source is None:
            return None
        for source in sources:
            if source != self.source:
                return f"this API key belongs to source {self.source!r}; it may not send {source!r} reports"
        return None


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class IngestKeyService:
    def __init__(self, keys: IngestKeyRepository, legacy_keys: Sequence[str] = ()) -> None:
        self._keys = keys
        self._legacy = [k.encode() for k in legacy_keys if k]

    def create(self, source: str, actor: str) -> NewIngestKey:
        if source not in KEY_SOURCES:
            raise Unprocessable(
                f"unknown ingest source {source!r}: keys are for {', '.join(KEY_SOURCES)}", "unknown_source"
            )
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        row = self._keys.add_ingest_key(IngestKey(source=source, key_sha256=key_hash(secret), created_by=actor))
        return NewIngestKey(row, secret)

    def all_keys(self) -> Sequence[IngestKey]:
        return self._keys.ingest_keys()

    def revoke(self, key_id: int, actor: str) -> IngestKey:
        return self._keys.revoke_ingest_key(key_id, actor, datetime.now(UTC))

    def authenticate(self, secret: str | None) -> IngestCaller | None:
        """The caller ``secret`` speaks for; None when it is missing, unknown or revoked (blocking)."""
        if not secret:
            return None
        if any(hmac.compare_digest(secret.encode(), k) for k in self._legacy):
            return IngestCaller(None, None)
        key = self._keys.ingest_key_by_hash(key_hash(secret))
        if key is None or key.revoked_at is not None or key.id is None:
            return None
        now = datetime.now(UTC)
        if key.last_used_at is None or now - key.last_used_at >= TOUCH_EVERY:
            self._keys.touch_ingest_key(key.id, now)
        return IngestCaller(key.id, key.source)
