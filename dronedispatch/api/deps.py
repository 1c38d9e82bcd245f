"""Dependencies shared by the routers (``Annotated[..., Depends]`` aliases)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.security import OAuth2PasswordBearer

from dronedispatch.api.security import InvalidToken, read_claims
from dronedispatch.runtime import Runtime

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


@dataclass(frozen=True)
class Principal:
    username: str
    role: str
    session_id: str | None = None  # the login session the token belongs to (what sign-out revokes)
    district: str | None = None  # the one district the account works for; None: the whole city


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def authenticate(runtime: Runtime, token: str) -> Principal:
    """Who ``token`` speaks for; :class:`InvalidToken` with the reason when it is bad, expired, or its
    account was disabled, deleted or given another role since (such an account loses its tokens at once),
    or its session was signed out. Both are read from the database, so this holds on every node."""
    claims = read_claims(runtime.settings.secret_key, token)
    username, role = claims.username, claims.role
    user = runtime.store.get_user(username)
    if user is None or user.disabled or user.role != role:
        raise InvalidToken("account disabled or changed: log in again")
    if claims.session_id is not None and not runtime.logins.session_active(claims.session_id, username):
        raise InvalidToken("signed out: log in again")
    return Principal(username, role, session_id=claims.session_id, district=user.district)


def current_principal(runtime: RuntimeDep, token: Annotated[str | None, Depends(oauth2_scheme)]) -> Principal:
    if not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not logged in", headers={"WWW-Authenticate": "Bearer"})
    try:
        return authenticate(runtime, token)
    except InvalidToken as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require(*roles: str) -> Callable[[Principal], Principal]:
    """A dependency that lets only ``roles`` (and admin) through; anyone else gets 403."""
    allowed = set(roles) | {"admin"}

    def check(principal: PrincipalDep) -> Principal:
        if principal.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"role {principal.role!r} may not do this (needs {' or '.join(roles)})"
            )
        return principal

    return check


AnyUser = PrincipalDep
Operator = Annotated[Principal, Depends(require("operator"))]
Pilot = Annotated[Principal, Depends(require("pilot"))]
Tester = Annotated[Principal, Depends(require("tester"))]
Admin = Annotated[Principal, Depends(require("admin"))]


#: A database id in a path: positive and within a 64-bit integer (larger ids cannot exist).
DbId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Numeric id")]
#: Paging of list routes.
Limit = Annotated[int, Query(ge=1, le=1000, description="Most rows to return")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip")]
