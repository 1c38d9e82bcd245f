"""Access tokens (JWT, HS256) and role checks. Tokens carry everything a node needs, so API
nodes hold no session state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt

ALGORITHM = "HS256"


class InvalidToken(Exception):
    pass


def issue_token(secret: str, username: str, role: str, ttl_minutes: int, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    claims = {"sub": username, "role": role, "iat": now, "exp": now + timedelta(minutes=ttl_minutes)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_token(secret: str, token: str) -> tuple[str, str]:
    """(username, role) of a valid token; :class:`InvalidToken` with the reason otherwise."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "role", "exp"]})
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"invalid token: {exc}") from exc
    return str(claims["sub"]), str(claims["role"])
