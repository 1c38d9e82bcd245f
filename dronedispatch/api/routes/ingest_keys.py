"""Ingest keys (admin): add one for a source (the key is shown once), list them, revoke one."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from dronedispatch.api.deps import Admin, DbId, RuntimeDep
from dronedispatch.store.models import IngestKey

router = APIRouter(prefix="/admin/ingest-keys", tags=["administration"])


class IngestKeyCreate(BaseModel):
    model_config = {"json_schema_extra": {"examples": [{"source": "webhook"}]}}
    source: Literal["webhook", "cap"] = Field(description="The ingest source the key may send reports of.")


class IngestKeyPublic(BaseModel):
    id: int
    source: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, k: IngestKey) -> IngestKeyPublic:
        assert k.id is not None
        return cls(id=k.id, source=k.source, created_by=k.created_by, created_at=k.created_at,
                   revoked_at=k.revoked_at, revoked_by=k.revoked_by, last_used_at=k.last_used_at)  # fmt: skip


class IngestKeyCreated(IngestKeyPublic):
    key: str = Field(description="The key itself (X-API-Key): shown this once, only its SHA-256 is kept.")


@router.post("", response_model=IngestKeyCreated, status_code=status.HTTP_201_CREATED,
             summary="Add an API key for an ingest source (shown once)")  # fmt: skip
async def add_key(runtime: RuntimeDep, principal: Admin, body: IngestKeyCreate) -> IngestKeyCreated:
    new = await asyncio.to_thread(runtime.ingest_keys.create, body.source, principal.username)
    return IngestKeyCreated(**IngestKeyPublic.of(new.key).model_dump(), key=new.secret)


@router.get("", response_model=list[IngestKeyPublic], summary="Every ingest key, revoked ones too (no secrets)")
async def list_keys(runtime: RuntimeDep, _: Admin) -> list[IngestKeyPublic]:
    return [IngestKeyPublic.of(k) for k in await asyncio.to_thread(runtime.ingest_keys.all_keys)]


@router.delete("/{key_id}", response_model=IngestKeyPublic, summary="Revoke an ingest key (on every node at once)")
async def revoke_key(runtime: RuntimeDep, principal: Admin, key_id: DbId) -> IngestKeyPublic:
    return IngestKeyPublic.of(await asyncio.to_thread(runtime.ingest_keys.revoke, key_id, principal.username))
