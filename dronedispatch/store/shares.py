"""Share links: rows of ``shares`` (only the SHA-256 of each token), one short transaction each."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from dronedispatch.store.models import Share
from dronedispatch.store.repo import NotFound, as_utc


class ShareStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_share(self, share: Share) -> Share:
        with Session(self.engine, expire_on_commit=False) as s:
            s.add(share)
            s.commit()
            return _utc(share)

    def get_share(self, share_id: str) -> Share:
        with Session(self.engine, expire_on_commit=False) as s:
            share = s.get(Share, share_id)
            if share is None:
                raise NotFound("share", share_id)
            return _utc(share)

    def share_by_token_hash(self, token_sha256: str) -> Share | None:
        with Session(self.engine, expire_on_commit=False) as s:
            share = s.exec(select(Share).where(Share.token_sha256 == token_sha256)).first()
            return _utc(share) if share is not None else None

    def shares_of(self, incident_id: int) -> Sequence[Share]:
        with Session(self.engine, expire_on_commit=False) as s:
            q = select(Share).where(Share.incident_id == incident_id).order_by(col(Share.created_at).desc())
            return [_utc(x) for x in s.exec(q).all()]

    def revoke_share(self, share_id: str, actor: str, at: datetime) -> Share:
        """Revoke the share (a second revocation keeps the first one's time and actor)."""
        with Session(self.engine, expire_on_commit=False) as s:
            share = s.get(Share, share_id, with_for_update=True)
            if share is None:
                raise NotFound("share", share_id)
            if share.revoked_at is None:
                share.revoked_at, share.revoked_by = at, actor
                s.add(share)
                s.commit()
            return _utc(share)


def _utc(share: Share) -> Share:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    share.created_at = as_utc(share.created_at)
    share.expires_at = as_utc(share.expires_at)
    if share.revoked_at is not None:
        share.revoked_at = as_utc(share.revoked_at)
    return share
