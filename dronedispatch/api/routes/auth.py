from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from dronedispatch.api.deps import AnyUser, RuntimeDep
from dronedispatch.api.security import issue_token
from dronedispatch.store.users import verify_password

router = APIRouter(tags=["auth"])


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    username: str
    role: str


class Me(BaseModel):
    username: str
    role: str


@router.post("/auth/token", response_model=Token, summary="Log in (OAuth2 password form)")
def login(runtime: RuntimeDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    user = runtime.store.get_user(form.username)
    if user is None or user.disabled or not verify_password(user.password_hash, form.password):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    token = issue_token(runtime.settings.secret_key, user.username, user.role, runtime.settings.token_ttl_minutes)
    runtime.store.audit(user.username, "auth.login", "user", user.username)
    return Token(access_token=token, username=user.username, role=user.role)


@router.get("/me", response_model=Me, summary="Who the token belongs to")
def me(principal: AnyUser) -> Me:
    return Me(username=principal.username, role=principal.role)
