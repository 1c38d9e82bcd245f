"""Scenario runs for testers: list the shipped scenarios and past runs, start one, read its reports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from dronedispatch.api.deps import RuntimeDep, Tester
from dronedispatch.scenario.service import ScenarioRuns

router = APIRouter(tags=["scenarios"])

RunId = Annotated[str, Path(pattern=r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{8}$", description="Run id")]
MEDIA = {"report.html": "text/html; charset=utf-8", "junit.xml": "application/xml", "output.txt": "text/plain"}


def get_scenario_runs(runtime: RuntimeDep) -> ScenarioRuns:
    """Runs live beside the recordings (``var/scenario-runs`` by default)."""
    return ScenarioRuns(runtime.settings.recordings_dir.parent / "scenario-runs")


Runs = Annotated[ScenarioRuns, Depends(get_scenario_runs)]


class StartRun(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="A shipped scenario, e.g. 'surge'.")


@router.get("/scenarios", summary="Shipped scenarios and past runs, newest first")
def list_scenarios(runs: Runs, _: Tester) -> dict[str, Any]:
    return {"scenarios": runs.shipped(), "runs": [r.public() for r in runs.runs()]}


@router.post("/scenarios", status_code=status.HTTP_202_ACCEPTED, summary="Start a shipped scenario in the background")
async def start_scenario(runs: Runs, _: Tester, body: StartRun) -> dict[str, Any]:
    return (await runs.start(body.name)).public()


@router.get("/scenarios/runs/{run_id}", summary="One run: state, verdict counts, report links")
def get_run(runs: Runs, _: Tester, run_id: RunId) -> dict[str, Any]:
    info = runs.get(run_id)
    if info is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no scenario run {run_id}")
    return info.public()


@router.get("/scenarios/runs/{run_id}/{name}", summary="A run's report.html, junit.xml or output.txt")
def run_file(runs: Runs, _: Tester, run_id: RunId, name: str) -> FileResponse:
    path = runs.file(run_id, name)
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} has no {name} (yet)")
    return FileResponse(path, media_type=MEDIA[name])
