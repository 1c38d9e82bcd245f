"""Login throttling, sign-in sessions and WebSocket tickets: one short transaction each.

Everything lives in the database, so every node counts the same failures, honours the same
lockouts and sees a session revoked the moment it is. Locking a key and clearing a lock append
their audit entry in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from dronedispatch.domain.login_throttle import ThrottleRule, ThrottleState, after_failure
from dronedispatch.store.models import AuditEntry, LoginSession, LoginThrottle, WsTicket
from dronedispatch.store.repo import NotFound, as_utc

#: A key with no failure for this long and no lock running is deleted (and its lockout count with it).
STALE_AFTER = timedelta(days=1)


class LoginStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- throttling ------------------------------------------------------------------------------

    def locked_until(self, keys: Sequence[tuple[str, str]], at: datetime) -> datetime | None:
        """The latest lock among ``keys`` ((kind, key) pairs) still running at ``at``, else None."""
        latest: datetime | None = None
        with Session(self.engine) as s:
            for kind, key in keys:
                row = s.exec(select(LoginThrottle).where(LoginThrottle.kind == kind, LoginThrottle.key == key)).first()
                if row is not None and row.locked_until is not None:
                    until = as_utc(row.locked_until)
                    if until > at and (latest is None or until > latest):
                        latest = until
        return latest

    def record_failure(self, kind: str, key: str, at: datetime, rule: ThrottleRule, actor: str) -> LoginThrottle:
        """Count a failed login against the key; the failure that reaches the limit locks it (audited)."""
        for attempt in range(2):  # two nodes may create the same key's row at once: the loser retries
            try:
                return self._record_failure(kind, key, at, rule, actor)
            except IntegrityError:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _record_failure(self, kind: str, key: str, at: datetime, rule: ThrottleRule, actor: str) -> LoginThrottle:
        with Session(self.engine, expire_on_commit=False) as s:
            # keys quiet for a day and not locked are forgotten, so guessed names do not pile up for months
            stale = at - STALE_AFTER
            s.exec(delete(LoginThrottle).where(  # type: ignore[call-overload]
                col(LoginThrottle.last_failure_at) < stale,
                or_(col(LoginThrottle.locked_until).is_(None), col(LoginThrottle.locked_until) < at),
            ))  # fmt: skip
            row = s.exec(
                select(LoginThrottle).where(LoginThrottle.kind == kind, LoginThrottle.key == key).with_for_update()
            ).first()
            before = (
                ThrottleState(row.failures, as_utc(row.window_start), _opt_utc(row.locked_until), row.lockouts)
                if row is not None
                else None
            )
            after = after_failure(before, at, rule)
            if row is None:
                row = LoginThrottle(kind=kind, key=key, window_start=at, last_failure_at=at)
            row.failures, row.window_start, row.lockouts = after.failures, after.window_start, after.lockouts
            row.locked_until, row.last_failure_at = after.locked_until, at
            s.add(row)
            s.flush()
            if after.lockouts > (before.lockouts if before else 0) and after.locked_until is not None:
                s.add(AuditEntry(actor=actor, action="auth.lockout", target_type=f"login_{kind}", target_id=key,
                                 detail={"lockout_id": row.id, "until": after.locked_until.isoformat(),
                                         "lockouts": after.lockouts}))  # fmt: skip
            s.commit()
            return _utc_throttle(row)

    def clear_failures(self, kind: str, key: str) -> None:
        """Forget a key's failures and past lockouts (an account that logged in starts afresh)."""
        with Session(self.engine) as s:
            s.exec(delete(LoginThrottle).where(col(LoginThrottle.kind) == kind, col(LoginThrottle.key) == key))  # type: ignore[call-overload]
            s.commit()

    def throttles(self) -> Sequence[LoginThrottle]:
        with Session(self.engine, expire_on_commit=False) as s:
            rows = s.exec(select(LoginThrottle).order_by(col(LoginThrottle.last_failure_at).desc())).all()
            return [_utc_throttle(r) for r in rows]

    def clear_throttle(self, throttle_id: int, actor: str) -> LoginThrottle:
        """Delete a key's failures and lock (audited as ``auth.lockout_clear``)."""
        with Session(self.engine, expire_on_commit=False) as s:
            row = s.get(LoginThrottle, throttle_id, with_for_update=True)
            if row is None:
                raise NotFound("lockout", throttle_id)
            s.delete(row)
            s.add(AuditEntry(actor=actor, action="auth.lockout_clear", target_type=f"login_{row.kind}",
                             target_id=row.key, detail={"lockout_id": throttle_id}))  # fmt: skip
            s.commit()
            return _utc_throttle(row)

    # -- sessions --------------------------------------------------------------------------------

    def add_session(self, session: LoginSession) -> LoginSession:
        with Session(self.engine, expire_on_commit=False) as s:
            s.add(session)
            s.commit()
            return _utc_session(session)

    def get_session(self, session_id: str) -> LoginSession | None:
        with Session(self.engine, expire_on_commit=False) as s:
            row = s.get(LoginSession, session_id)
            return _utc_session(row) if row is not None else None

    def rotate_refresh(self, old_sha256: str, new_sha256: str, at: datetime) -> tuple[LoginSession | None, bool]:
        """Swap the session's refresh token: (the session, False). An unknown token: (None, False).
        The token it replaced last time (a replay: someone else holds a copy): the session is revoked,
        (it, True)."""
        with Session(self.engine, expire_on_commit=False) as s:
            current = select(LoginSession).where(LoginSession.refresh_sha256 == old_sha256)
            row = s.exec(current.with_for_update()).first()
            if row is not None:
                if row.revoked_at is None and as_utc(row.expires_at) > at:
                    row.previous_sha256, row.refresh_sha256, row.refreshed_at = old_sha256, new_sha256, at
                    s.add(row)
                    s.commit()
                return _utc_session(row), False
            row = s.exec(
                select(LoginSession).where(LoginSession.previous_sha256 == old_sha256).with_for_update()
            ).first()
            if row is None:
                return None, False
            if row.revoked_at is None:
                row.revoked_at, row.revoked_reason = at, "refresh token replayed"
                s.add(row)
                s.add(AuditEntry(actor=row.username, action="auth.refresh_replayed", target_type="login_session",
                                 target_id=row.id, detail={}))  # fmt: skip
                s.commit()
            return _utc_session(row), True

    def revoke_session(self, session_id: str, at: datetime, reason: str) -> LoginSession | None:
        with Session(self.engine, expire_on_commit=False) as s:
            row = s.get(LoginSession, session_id, with_for_update=True)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at, row.revoked_reason = at, reason
                s.add(row)
                s.commit()
            return _utc_session(row)

    def session_by_refresh(self, refresh_sha256: str) -> LoginSession | None:
        with Session(self.engine, expire_on_commit=False) as s:
            row = s.exec(select(LoginSession).where(LoginSession.refresh_sha256 == refresh_sha256)).first()
            return _utc_session(row) if row is not None else None

    # -- WebSocket tickets -------------------------------------------------------------------------

    def add_ticket(self, ticket: WsTicket, at: datetime) -> None:
        with Session(self.engine) as s:
            s.exec(delete(WsTicket).where(col(WsTicket.expires_at) <= at))  # type: ignore[call-overload]
            s.add(ticket)
            s.commit()

    def take_ticket(self, ticket_sha256: str, at: datetime) -> WsTicket | None:
        """The ticket, deleted as it is read (one use); None when unknown, used or expired."""
        with Session(self.engine, expire_on_commit=False) as s:
            row = s.get(WsTicket, ticket_sha256, with_for_update=True)
            if row is None:
                return None
            s.delete(row)
            s.commit()
            row.expires_at = as_utc(row.expires_at)
            return row if row.expires_at > at else None


def _opt_utc(dt: datetime | None) -> datetime | None:
    return as_utc(dt) if dt is not None else None


def _utc_throttle(row: LoginThrottle) -> LoginThrottle:
    row.window_start, row.last_failure_at = as_utc(row.window_start), as_utc(row.last_failure_at)
    row.locked_until = _opt_utc(row.locked_until)
    return row


def _utc_session(row: LoginSession) -> LoginSession:
    row.created_at, row.expires_at = as_utc(row.created_at), as_utc(row.expires_at)
    row.refreshed_at, row.revoked_at = _opt_utc(row.refreshed_at), _opt_utc(row.revoked_at)
    return row
