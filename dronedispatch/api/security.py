"""Access tokens (JWT, HS256) and role checks. Tokens carry who and which role; a token from a
login also names its session (``sid``), which the database can revoke (sign-out) on every node."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

ALGORITHM = "HS256"


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class Claims:
    username: str
    role: str
    session_id: str | None  # None: a token made without a login (the scenario runner's, tests')
    expires_at: datetime


def issue_token(
    secret: str,
    username: str,
    role: str,
    ttl_minutes: float,
    now: datetime | None = None,
    session_id: str | None = None,
) -> str:
    # wall time: the expiry is read by every node and by the browser, which refreshes before it
    now = now or datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": username, "role": role, "iat": now, "exp": now + timedelta(minutes=ttl_minutes),
        # a token of its own even when refreshed within the second it was issued (iat/exp have 1 s resolution)
        "jti": secrets.token_hex(8),
    }  # fmt: skip
    if session_id is not None:
        claims["sid"] = session_id
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_claims(secret: str, token: str) -> Claims:
    """The claims of a valid token; :class:`InvalidToken` with the reason otherwise."""
    try:
        # no check of "iat" against this host's clock: a token issued just before the clock steps back would be
        # "not yet valid" until the clock caught up. Its expiry (wall time, as every node reads it) bounds it.
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "role", "exp"], "verify_iat": False}
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"invalid token: {exc}") from exc
    sid = claims.get("sid")
    return Claims(
        str(claims["sub"]), str(claims["role"]), str(sid) if sid is not None else None,
        datetime.fromtimestamp(int(claims["exp"]), UTC),
    )  # fmt: skip


def read_token(secret: str, token: str) -> tuple[str, str]:
    """(username, role) of a valid token; :class:`InvalidToken` with the reason otherwise."""
    claims = read_claims(secret, token)
    return claims.username, claims.role
