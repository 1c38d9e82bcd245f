"""Incident records (HTML, PDF), evidence packages, and splitting a merged report out of an incident."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from dronedispatch.api.access import IncidentId
from dronedispatch.api.deps import DbId, Operator, Principal, RuntimeDep, require
from dronedispatch.app.records import RecordService
from dronedispatch.app.splits import ReportSplitter
from dronedispatch.schemas import IncidentPublic

router = APIRouter(tags=["records"])

#: Who may read records and evidence: the centre's crew (and admin), not a viewer.
Crew = Annotated[Principal, Depends(require("operator", "pilot", "tester"))]


def _records(runtime: RuntimeDep) -> RecordService:
    return RecordService(
        runtime.store, runtime.telemetry, cameras=runtime.cameras, districts=runtime.districts,
        airspace=runtime.airspace.as_geojson(),
    )  # fmt: skip


Records = Annotated[RecordService, Depends(_records)]


class SplitResult(BaseModel):
    incident: IncidentPublic  # the incident the report left
    new_incident: IncidentPublic  # the report's own incident, open


@router.get(
    "/incidents/{incident_id}/record",
    summary="The incident's whole story on one page (HTML, or PDF with format=pdf)",
    responses={200: {"content": {"text/html": {}, "application/pdf": {}}}},
    response_class=HTMLResponse,
)
def incident_record(
    records: Records, _: Crew, incident_id: IncidentId, format: Literal["html", "pdf"] = Query(default="html")
) -> Response:
    if format == "pdf":
        pdf = records.record_pdf(incident_id)
        headers = {"Content-Disposition": f'inline; filename="incident-{incident_id}-record.pdf"'}
        return Response(pdf, media_type="application/pdf", headers=headers)
    return HTMLResponse(records.record_html(incident_id))


@router.get(
    "/incidents/{incident_id}/evidence-package",
    summary="Zip of the record, recordings, telemetry, snapshots, manifest with SHA-256 and audit entries",
    responses={200: {"content": {"application/zip": {}}}},
    response_class=FileResponse,
)
def evidence_package(records: Records, principal: Crew, incident_id: IncidentId) -> FileResponse:
    fd, name = tempfile.mkstemp(prefix=f"dd-evidence-{incident_id}-", suffix=".zip")
    os.close(fd)
    path = Path(name)
    try:
        records.write_evidence_package(incident_id, path, actor=principal.username)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return FileResponse(
        path, media_type="application/zip", filename=f"incident-{incident_id}-evidence.zip",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )  # fmt: skip


@router.post(
    "/incidents/{incident_id}/reports/{report_id}/split",
    response_model=SplitResult,
    status_code=status.HTTP_201_CREATED,
    summary="Move a merged report into a new open incident of its own (audited incident.split)",
)
def split_report(runtime: RuntimeDep, principal: Operator, incident_id: IncidentId, report_id: DbId) -> SplitResult:
    old, new = ReportSplitter(runtime.store, runtime.bus).split(incident_id, report_id, principal.username)
    return SplitResult(incident=IncidentPublic.of(old), new_incident=IncidentPublic.of(new))
