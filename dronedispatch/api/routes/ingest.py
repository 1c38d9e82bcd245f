from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Header, HTTPException, Request, status

from dronedispatch.api.body import check_declared_length, read_limited
from dronedispatch.api.deps import RuntimeDep
from dronedispatch.ingest.base import MAX_PAYLOAD_BYTES, IngestError, Outcome
from dronedispatch.ingest.cap import MAX_CAP_BYTES, parse_cap
from dronedispatch.ingest.webhook import parse_webhook
from dronedispatch.schemas import IncidentPublic

router = APIRouter(tags=["ingest"])
T = TypeVar("T")


async def _read(
    runtime: RuntimeDep,
    request: Request,
    key: str | None,
    source: str,
    parse: Callable[[bytes, datetime], T],
    sources: Callable[[T], Iterable[str]],
    limit: int,
) -> T:
    """The request's body as ``parse`` reads it, once ``key`` checks out; counted under ``source``,
    refused with 422 (counted as rejected) when it does not parse, and with 403 when a report's
    source (``sources`` of what was parsed) is not the one the key belongs to. A body over ``limit``
    bytes gets 413 before it is read whole (before the key is looked up, when its length says so)."""
    check_declared_length(request, limit)
    caller = await asyncio.to_thread(runtime.ingest_keys.authenticate, key)  # reads the key's row: no cache
    if caller is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing, unknown or revoked X-API-Key")
    stats = runtime.ingest_stats
    stats.count(source, Outcome.RECEIVED)
    try:
        body = await read_limited(request, limit)
    except HTTPException as exc:
        stats.error(source, Outcome.REJECTED, str(exc.detail))
        raise
    try:
        parsed = parse(body, datetime.now(UTC))
    except IngestError as exc:
        stats.error(source, Outcome.REJECTED, str(exc))
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    refusal = caller.refusal(sources(parsed))
    if refusal is not None:
        stats.error(source, Outcome.REJECTED, refusal)
        raise HTTPException(status.HTTP_403_FORBIDDEN, refusal)
    return parsed


@router.post(
    "/ingest/webhook",
    response_model=IncidentPublic,
    status_code=status.HTTP_202_ACCEPTED,
    summary="A camera, sensor or emergency feed reports an incident (X-API-Key)",
)
async def webhook(
    runtime: RuntimeDep, request: Request, x_api_key: Annotated[str | None, Header()] = None
) -> IncidentPublic:
    report = await _read(runtime, request, x_api_key, "webhook", parse_webhook, lambda r: [r.source], MAX_PAYLOAD_BYTES)
    incident = runtime.dispatcher.ingest_report(report, actor="ingest:webhook")
    runtime.ingest_stats.count("webhook", Outcome.ACCEPTED)
    return IncidentPublic.of(incident)


@router.post(
    "/ingest/cap",
    response_model=list[IncidentPublic],
    status_code=status.HTTP_202_ACCEPTED,
    summary="A CAP 1.2 alert (XML) from a public warning system (X-API-Key); one incident per area",
    openapi_extra={"requestBody": {"content": {"application/xml": {"schema": {"type": "string"}}}}},
)
async def cap(
    runtime: RuntimeDep, request: Request, x_api_key: Annotated[str | None, Header()] = None
) -> list[IncidentPublic]:
    reports = await _read(
        runtime, request, x_api_key, "cap", parse_cap, lambda rs: [r.source for r in rs], MAX_CAP_BYTES
    )
    runtime.ingest_stats.count("cap", Outcome.ACCEPTED if reports else Outcome.IGNORED)
    return [IncidentPublic.of(runtime.dispatcher.ingest_report(r, actor="ingest:cap")) for r in reports]
