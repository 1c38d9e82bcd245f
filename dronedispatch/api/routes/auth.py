"""Logging in and out: the password form, refresh, sign-out, and the event WebSocket's ticket."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from dronedispatch.api.deps import AnyUser, RuntimeDep, oauth2_scheme
from dronedispatch.api.security import InvalidToken, issue_token, read_claims
from dronedispatch.app.logins import TICKET_TTL, LoginLocked, LoginRefused, SignIn
from dronedispatch.runtime import Runtime

router = APIRouter(tags=["auth"])

_REFUSED = {"description": "Wrong user name or password, or an account that is disabled"}
_LOCKED = {"description": "Too many failed logins for this account or address; `Retry-After` says when to retry"}


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    username: str
    role: str
    expires_in: int = Field(description="Seconds the access token is valid; refresh before then.")
    refresh_token: str = Field(description="Rotating: each refresh returns a new one and the old one stops working.")
    refresh_expires_in: int = Field(description="Seconds until the sign-in ends and a new login is needed.")


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=256)


class LogoutRequest(BaseModel):
    refresh_token: str | None = Field(default=None, max_length=256)


class Ticket(BaseModel):
    ticket: str = Field(description="Opens /api/v1/events?token=<ticket> once, within `expires_in` seconds.")
    expires_in: int


class Me(BaseModel):
    username: str
    role: str
    district: str | None = None  # only for an account held to one district (absent: the whole city)


def _token(runtime: Runtime, sign_in: SignIn) -> Token:
    minutes = runtime.settings.access_token_ttl_minutes
    access = issue_token(runtime.settings.secret_key, sign_in.username, sign_in.role, minutes,
                         session_id=sign_in.session_id)  # fmt: skip
    return Token(
        access_token=access,
        username=sign_in.username,
        role=sign_in.role,
        expires_in=int(minutes * 60),
        refresh_token=sign_in.refresh_token,
        refresh_expires_in=max(0, int((sign_in.refresh_expires_at - datetime.now(UTC)).total_seconds())),
    )


@router.post(
    "/auth/token",
    response_model=Token,
    summary="Log in (OAuth2 password form)",
    responses={401: _REFUSED, 429: _LOCKED},
)
def login(runtime: RuntimeDep, request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    address = request.client.host if request.client else "unknown"
    try:
        sign_in = runtime.logins.login(form.username, form.password, address)
    except LoginLocked as exc:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, exc.reason,
                            headers={"Retry-After": str(exc.retry_after_s)}) from exc  # fmt: skip
    except LoginRefused as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, exc.reason) from exc
    return _token(runtime, sign_in)


@router.post(
    "/auth/refresh",
    response_model=Token,
    summary="A new access token (and a new refresh token) for a refresh token",
    responses={401: {"description": "The refresh token is unknown, already used, or its sign-in is over"}},
)
def refresh(runtime: RuntimeDep, body: RefreshRequest) -> Token:
    try:
        return _token(runtime, runtime.logins.refresh(body.refresh_token))
    except LoginRefused as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, exc.reason) from exc


@router.post(
    "/auth/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Sign out: the session's access and refresh tokens stop working on every node",
)
def logout(
    runtime: RuntimeDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> Response:
    session_id, actor = None, ""
    if token:
        try:  # an expired access token cannot be read: the refresh token in the body names the session then
            claims = read_claims(runtime.settings.secret_key, token)
            session_id, actor = claims.session_id, claims.username
        except InvalidToken:
            pass
    runtime.logins.logout(actor, session_id, body.refresh_token if body else None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/auth/ws-ticket", response_model=Ticket, summary="A one-use ticket for the event WebSocket (30 s)")
def ws_ticket(runtime: RuntimeDep, principal: AnyUser) -> Ticket:
    ticket = runtime.logins.issue_ticket(principal.username, principal.session_id)
    return Ticket(ticket=ticket, expires_in=int(TICKET_TTL.total_seconds()))


@router.get(
    "/me", response_model=Me, response_model_exclude_none=True, summary="Who the token belongs to (and its district)"
)
def me(principal: AnyUser) -> Me:
    return Me(username=principal.username, role=principal.role, district=principal.district)
