"""Administration: accounts (list, add, disable, enable), login lockouts, and taking drones out of service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, Field

from dronedispatch.api.access import DroneId
from dronedispatch.api.deps import Admin, DbId, RuntimeDep
from dronedispatch.domain.passwords import MIN_LENGTH, password_problem
from dronedispatch.schemas import DronePublic
from dronedispatch.store.models import LoginThrottle, User
from dronedispatch.store.repo import as_utc
from dronedispatch.store.users import hash_password

router = APIRouter(prefix="/admin", tags=["administration"])


class UserPublic(BaseModel):
    username: str
    role: str
    disabled: bool
    created_at: datetime
    district: str | None = None


class UserCreate(BaseModel):
    model_config = {
        "json_schema_extra": {"examples": [{"username": "kim", "role": "operator", "password": "amber-kite-harbour"}]}
    }
    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="Login name.")
    role: Literal["operator", "pilot", "tester", "admin"]
    district: str | None = Field(
        default=None, max_length=32,
        description="The one district an operator or pilot works for (e.g. cheongna); none: the whole city.",
    )  # fmt: skip
    password: str = Field(
        min_length=MIN_LENGTH, max_length=256,
        description=f"At least {MIN_LENGTH} characters, not the user name, not a common password; stored hashed.",
    )  # fmt: skip


class MaintenanceFlag(BaseModel):
    maintenance: bool = Field(description="True takes the drone out of service: it is never recommended.")


def _public(u: User) -> UserPublic:
    return UserPublic(
        username=u.username, role=u.role, disabled=u.disabled, created_at=as_utc(u.created_at), district=u.district
    )


@router.get("/users", response_model=list[UserPublic], summary="Every account")
def list_users(runtime: RuntimeDep, _: Admin) -> list[UserPublic]:
    return [_public(u) for u in runtime.store.list_users()]


@router.post("/users", response_model=UserPublic, status_code=status.HTTP_201_CREATED, summary="Add an account")
def add_user(runtime: RuntimeDep, principal: Admin, body: UserCreate) -> UserPublic:
    problem = password_problem(body.username, body.password)
    if problem is not None:
        raise HTTPException(422, problem)
    runtime.access.check_assignable(body.district, body.role)  # 422: unknown district, or a city-wide role
    if runtime.store.get_user(body.username) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"user {body.username!r} already exists")
    user = runtime.store.upsert_user(body.username, hash_password(body.password), body.role, district=body.district)
    runtime.store.audit(principal.username, "user.add", "user", body.username, role=body.role, district=body.district)
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


class Lockout(BaseModel):
    id: int = Field(description="Clear it with DELETE /api/v1/admin/lockouts/{id}.")
    kind: Literal["account", "address"]
    key: str = Field(description="The account name (lower case) or the client address.")
    locked: bool = Field(description="Logins from this account or address are refused now.")
    locked_until: datetime | None
    failures: int = Field(description="Failed logins in the current window (since the last lock).")
    lockouts: int = Field(description="Locks so far; each one lasts twice as long as the one before.")
    last_failure_at: datetime


def _lockout(row: LoginThrottle) -> Lockout:
    assert row.id is not None
    now = datetime.now(UTC)
    return Lockout(
        id=row.id, kind=row.kind, key=row.key,  # type: ignore[arg-type]
        locked=row.locked_until is not None and row.locked_until > now, locked_until=row.locked_until,
        failures=row.failures, lockouts=row.lockouts, last_failure_at=row.last_failure_at,
    )  # fmt: skip


@router.get("/lockouts", response_model=list[Lockout], summary="Accounts and addresses with failed logins or locked")
def list_lockouts(runtime: RuntimeDep, _: Admin) -> list[Lockout]:
    return [_lockout(r) for r in runtime.logins.lockouts()]


@router.delete(
    "/lockouts/{lockout_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Clear a lockout: the account or address may log in again at once (audited)",
)
def clear_lockout(runtime: RuntimeDep, principal: Admin, lockout_id: DbId) -> Response:
    runtime.logins.clear_lockout(lockout_id, principal.username)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/drones/{drone_id}/maintenance", response_model=DronePublic, summary="Take a drone out of service or back")
def set_maintenance(runtime: RuntimeDep, principal: Admin, drone_id: DroneId, body: MaintenanceFlag) -> DronePublic:
    return runtime.fleet.set_maintenance(drone_id, body.maintenance, principal.username)
