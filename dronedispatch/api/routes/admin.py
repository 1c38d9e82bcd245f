"""Administration: accounts (list, add, disable, enable) and taking drones out of service."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from dronedispatch.api.deps import Admin, RuntimeDep
from dronedispatch.schemas import DronePublic
from dronedispatch.store.models import User
from dronedispatch.store.repo import as_utc
from dronedispatch.store.users import hash_password

router = APIRouter(prefix="/admin", tags=["administration"])


class UserPublic(BaseModel):
    username: str
    role: str
    disabled: bool
    created_at: datetime


class UserCreate(BaseModel):
    model_config = {
        "json_schema_extra": {"examples": [{"username": "kim", "role": "operator", "password": "s3cret-pw"}]}
    }
    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="Login name.")
    role: Literal["operator", "pilot", "tester", "admin"]
    password: str = Field(min_length=8, max_length=256, description="At least 8 characters; stored hashed.")


class MaintenanceFlag(BaseModel):
    maintenance: bool = Field(description="True takes the drone out of service: it is never recommended.")


def _public(u: User) -> UserPublic:
    return UserPublic(username=u.username, role=u.role, disabled=u.disabled, created_at=as_utc(u.created_at))


@router.get("/users", response_model=list[UserPublic], summary="Every account")
def list_users(runtime: RuntimeDep, _: Admin) -> list[UserPublic]:
    return [_public(u) for u in runtime.store.list_users()]


@router.post("/users", response_model=UserPublic, status_code=status.HTTP_201_CREATED, summary="Add an account")
def add_user(runtime: RuntimeDep, principal: Admin, body: UserCreate) -> UserPublic:
    if runtime.store.get_user(body.username) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"user {body.username!r} already exists")
    user = runtime.store.upsert_user(body.username, hash_password(body.password), body.role)
    runtime.store.audit(principal.username, "user.add", "user", body.username, role=body.role)
    return _public(user)


@router.post("/users/{username}/disable", response_model=UserPublic, summary="Disable an account (no more logins)")
def disable_user(runtime: RuntimeDep, principal: Admin, username: str) -> UserPublic:
    if username == principal.username:
        raise HTTPException(status.HTTP_409_CONFLICT, "an administrator may not disable their own account")
    user = runtime.store.set_user_disabled(username, True)
    runtime.store.audit(principal.username, "user.disable", "user", username)
    return _public(user)


@router.post("/users/{username}/enable", response_model=UserPublic, summary="Enable a disabled account")
def enable_user(runtime: RuntimeDep, principal: Admin, username: str) -> UserPublic:
    user = runtime.store.set_user_disabled(username, False)
    runtime.store.audit(principal.username, "user.enable", "user", username)
    return _public(user)


@router.put("/drones/{drone_id}/maintenance", response_model=DronePublic, summary="Take a drone out of service or back")
def set_maintenance(runtime: RuntimeDep, principal: Admin, drone_id: str, body: MaintenanceFlag) -> DronePublic:
    return runtime.fleet.set_maintenance(drone_id, body.maintenance, principal.username)
