from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, status

from dronedispatch.api.deps import RuntimeDep
from dronedispatch.ingest.base import IngestError, Outcome
from dronedispatch.ingest.cap import parse_cap
from dronedispatch.ingest.webhook import parse_webhook
from dronedispatch.schemas import IncidentPublic

router = APIRouter(tags=["ingest"])


def _check_key(runtime: RuntimeDep, key: str | None) -> None:
    if not key or key not in runtime.settings.ingest_api_keys:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or unknown X-API-Key")


@router.post(
    "/ingest/webhook",
    response_model=IncidentPublic,
    status_code=status.HTTP_202_ACCEPTED,
    summary="A camera, sensor or emergency feed reports an incident (X-API-Key)",
)
async def webhook(
    runtime: RuntimeDep, request: Request, x_api_key: Annotated[str | None, Header()] = None
) -> IncidentPublic:
    _check_key(runtime, x_api_key)
    body = await request.body()
    stats = runtime.ingest_stats
    stats.count("webhook", Outcome.RECEIVED)
    try:
        report = parse_webhook(body, datetime.now(UTC))
    except IngestError as exc:
        stats.error("webhook", Outcome.REJECTED, str(exc))
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    incident = runtime.dispatcher.ingest_report(report, actor="ingest:webhook")
    stats.count("webhook", Outcome.ACCEPTED)
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
    _check_key(runtime, x_api_key)
    body = await request.body()
    stats = runtime.ingest_stats
    stats.count("cap", Outcome.RECEIVED)
    try:
        reports = parse_cap(body, datetime.now(UTC))
    except IngestError as exc:
        stats.error("cap", Outcome.REJECTED, str(exc))
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    stats.count("cap", Outcome.ACCEPTED if reports else Outcome.IGNORED)
    return [IncidentPublic.of(runtime.dispatcher.ingest_report(r, actor="ingest:cap")) for r in reports]
