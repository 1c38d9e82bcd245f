"""Logins: failed-login throttling with lockouts, sign-in sessions with rotating refresh tokens,
sign-out, and one-use tickets for the event WebSocket.

- Every failed login counts against the account name and the client address
  (:mod:`dronedispatch.domain.login_throttle`); a locked key refuses even the right password
  until its lock runs out or an admin clears it. The counts live in the database: every node
  sees the same ones.
- A login opens a session: a refresh token (only its SHA-256 kept) that rotates at every refresh,
  and access tokens that name the session. Revoking the session (sign-out, a replayed refresh
  token) stops its access tokens at once on every node, as disabling the account does.
- The browser's WebSocket cannot send headers, so it opens with a ticket: random, valid 30 s,
  usable once, so a URL that ends up in a log opens nothing.

Time: lockouts, sessions and tickets expire on wall-clock time (``datetime.now``), not the monotonic
clock: they are stored and read by every node, and a monotonic reading means nothing to another process.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import ceil
from typing import Protocol

from dronedispatch.app.errors import ServiceError
from dronedispatch.domain.login_throttle import ACCOUNT_RULE, ADDRESS_RULE, ThrottleRule
from dronedispatch.store.models import LoginSession, LoginThrottle, User, WsTicket

REFRESH_PREFIX = "ddr_"
TICKET_PREFIX = "wst_"
TICKET_TTL = timedelta(seconds=30)


class LoginRepository(Protocol):
    def locked_until(self, keys: Sequence[tuple[str, str]], at: datetime) -> datetime | None: ...
    def record_failure(self, kind: str, key: str, at: datetime, rule: ThrottleRule, actor: str) -> LoginThrottle: ...
    def clear_failures(self, kind: str, key: str) -> None: ...
    def throttles(self) -> Sequence[LoginThrottle]: ...
    def clear_throttle(self, throttle_id: int, actor: str) -> LoginThrottle: ...
    def add_session(self, session: LoginSession) -> LoginSession: ...
    def get_session(self, session_id: str) -> LoginSession | None: ...
    def session_by_refresh(self, refresh_sha256: str) -> LoginSession | None: ...
    def rotate_refresh(self, old_sha256: str, new_sha256: str, at: datetime) -> tuple[LoginSession | None, bool]: ...
    def revoke_session(self, session_id: str, at: datetime, reason: str) -> LoginSession | None: ...
    def add_ticket(self, ticket: WsTicket, at: datetime) -> None: ...
    def take_ticket(self, ticket_sha256: str, at: datetime) -> WsTicket | None: ...


class UserDirectory(Protocol):
    def get_user(self, username: str) -> User | None: ...
    def audit(self, actor: str, action: str, target_type: str, target_id: object, **detail: object) -> None: ...


class LoginRefused(ServiceError):
    """Wrong name or password, a disabled account, or a refresh token that opens nothing."""


class LoginLocked(ServiceError):
    """Too many failed logins for the account or the address: try again in ``retry_after_s``."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed logins: try again in {retry_after_s} s", "login_locked")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class SignIn:
    """A session opened or refreshed: the caller makes the access token from it."""

    username: str
    role: str
    session_id: str
    refresh_token: str  # shown once, never stored
    refresh_expires_at: datetime


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class LoginService:
    def __init__(
        self,
        repo: LoginRepository,
        users: UserDirectory,
        verify_password: Callable[[str, str], bool],
        session_ttl: timedelta,
        dummy_hash: str,
        *,
        account_rule: ThrottleRule = ACCOUNT_RULE,
        address_rule: ThrottleRule = ADDRESS_RULE,
    ) -> None:
        self._repo, self._users, self._verify = repo, users, verify_password
        self._session_ttl = session_ttl
        self._rules = {"account": account_rule, "address": address_rule}
        # verified against when the account does not exist, so a wrong name takes as long as a wrong password
        self._dummy_hash = dummy_hash

    def login(self, username: str, password: str, address: str) -> SignIn:
        """Check the password (blocking: argon2 and the store). :class:`LoginLocked` while the
        account or the address is locked, :class:`LoginRefused` on a wrong name or password."""
        now = datetime.now(UTC)
        # keys and the audit actor fit the columns (64): no account has a longer name
        name, address = username.casefold()[:64], address[:64]
        keys = [("account", name), ("address", address)]
        until = self._repo.locked_until(keys, now)
        if until is not None:
            raise LoginLocked(max(1, ceil((until - now).total_seconds())))
        user = self._users.get_user(username)
        good = self._verify(user.password_hash if user is not None else self._dummy_hash, password)
        if user is None or user.disabled or not good:
            locked: list[datetime] = []
            for kind, key in keys:
                row = self._repo.record_failure(kind, key, now, self._rules[kind], name)
                if row.locked_until is not None and row.locked_until > now:
                    locked.append(row.locked_until)
            if locked:
                raise LoginLocked(max(1, ceil((max(locked) - now).total_seconds())))
            raise LoginRefused("wrong user name or password")
        self._repo.clear_failures("account", name)
        sign_in = self._open_session(user, now)
        self._users.audit(user.username, "auth.login", "user", user.username, address=address)
        return sign_in

    def _open_session(self, user: User, now: datetime) -> SignIn:
        refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
        session = self._repo.add_session(
            LoginSession(
                id=secrets.token_hex(16),
                username=user.username,
                refresh_sha256=_sha256(refresh),
                created_at=now,
                expires_at=now + self._session_ttl,
            )
        )
        return SignIn(user.username, user.role, session.id, refresh, session.expires_at)

    def refresh(self, refresh_token: str) -> SignIn:
        """A new refresh token for the session ``refresh_token`` belongs to (it stops working)."""
        now = datetime.now(UTC)
        new = REFRESH_PREFIX + secrets.token_urlsafe(32)
        session, replayed = self._repo.rotate_refresh(_sha256(refresh_token), _sha256(new), now)
        if replayed:
            raise LoginRefused("this refresh token was already used: the session is closed, log in again")
        if session is None or session.revoked_at is not None or session.expires_at <= now:
            raise LoginRefused("the session is over: log in again")
        user = self._users.get_user(session.username)
        if user is None or user.disabled:
            self._repo.revoke_session(session.id, now, "account disabled")
            raise LoginRefused("account disabled or changed: log in again")
        return SignIn(user.username, user.role, session.id, new, session.expires_at)

    def logout(self, actor: str, session_id: str | None, refresh_token: str | None) -> bool:
        """Revoke the session named by the access token and/or the refresh token; False if neither opened one."""
        now = datetime.now(UTC)
        ids = {session_id} if session_id else set()
        if refresh_token:
            session = self._repo.session_by_refresh(_sha256(refresh_token))
            if session is not None:
                ids.add(session.id)
        revoked = [s for s in (self._repo.revoke_session(i, now, "signed out") for i in ids) if s is not None]
        for s in revoked:
            self._users.audit(actor or s.username, "auth.logout", "user", s.username, session=s.id)
        return bool(revoked)

    def session_active(self, session_id: str, username: str) -> bool:
        """Whether an access token of ``session_id`` still speaks for ``username`` (blocking)."""
        session = self._repo.get_session(session_id)
        return (
            session is not None
            and session.username == username
            and session.revoked_at is None
            and session.expires_at > datetime.now(UTC)
        )

    # -- WebSocket tickets

    def issue_ticket(self, username: str, session_id: str | None) -> str:
        now = datetime.now(UTC)
        ticket = TICKET_PREFIX + secrets.token_urlsafe(24)
        self._repo.add_ticket(
            WsTicket(ticket_sha256=_sha256(ticket), username=username, session_id=session_id,
                     expires_at=now + TICKET_TTL),
            now,
        )  # fmt: skip
        return ticket

    def redeem_ticket(self, ticket: str) -> WsTicket | None:
        """The ticket's holder, once: a second use, an unknown or expired ticket gives None."""
        row = self._repo.take_ticket(_sha256(ticket), datetime.now(UTC))
        if row is None or (row.session_id is not None and not self.session_active(row.session_id, row.username)):
            return None
        return row

    # -- administration

    def lockouts(self) -> Sequence[LoginThrottle]:
        return self._repo.throttles()

    def clear_lockout(self, throttle_id: int, actor: str) -> LoginThrottle:
        return self._repo.clear_throttle(throttle_id, actor)
