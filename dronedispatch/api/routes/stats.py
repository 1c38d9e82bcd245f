"""Statistics for the centre: every table as JSON or, with ``format=csv``, as CSV.

Common query parameters: ``from`` (ISO date or datetime, inclusive; default 30 days before ``to``),
``to`` (exclusive; default now), ``district`` and ``category`` (optional).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response

from dronedispatch.api.access import ScopeDep
from dronedispatch.api.deps import AnyUser, RuntimeDep
from dronedispatch.app.monthly_report import district_names, monthly_report_pdf
from dronedispatch.app.statistics import Table
from dronedispatch.store.stats import Filter

router = APIRouter(prefix="/stats", tags=["statistics"])

Format = Annotated[Literal["json", "csv"], Query(alias="format", description="json, or csv for a spreadsheet")]


def period(
    runtime: RuntimeDep,
    _: AnyUser,
    scope: ScopeDep,
    from_: Annotated[
        datetime | None, Query(alias="from", description="Start, inclusive (ISO date or datetime)")
    ] = None,
    to: Annotated[datetime | None, Query(description="End, exclusive (ISO date or datetime)")] = None,
    district: Annotated[str | None, Query(max_length=32)] = None,
    category: Annotated[str | None, Query(max_length=32)] = None,
) -> Filter:
    # a district account's statistics are its district's (another district: 403)
    return runtime.statistics.filter(from_, to, runtime.access.stats_district(scope, district), category)


PeriodDep = Annotated[Filter, Depends(period)]


def _answer(table: Table, fmt: str, name: str) -> Response:
    if fmt == "csv":
        return Response(
            table.as_csv(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return JSONResponse(table.as_json())


@router.get("/response-times", summary="Report → dispatch → airborne → on scene: p50/p90 per group")
def response_times(
    runtime: RuntimeDep,
    f: PeriodDep,
    group_by: Literal["district", "category", "hour", "week", "none"] = "none",
    fmt: Format = "json",
) -> Any:
    return _answer(runtime.statistics.response_times(f, group_by), fmt, "response-times")


@router.get("/first-on-scene", summary="Share of incidents where a drone was first on scene")
def first_on_scene(
    runtime: RuntimeDep,
    f: PeriodDep,
    group_by: Literal["district", "category", "hour", "week", "none"] = "none",
    fmt: Format = "json",
) -> Any:
    return _answer(runtime.statistics.first_on_scene(f, group_by), fmt, "first-on-scene")


@router.get("/outcomes", summary="Closed incidents by outcome, and those still open")
def outcomes(
    runtime: RuntimeDep,
    f: PeriodDep,
    group_by: Literal["district", "category", "hour", "week", "none"] = "none",
    fmt: Format = "json",
) -> Any:
    return _answer(runtime.statistics.outcomes(f, group_by), fmt, "outcomes")


@router.get("/sources", summary="Incidents and false alarms per source and camera")
def sources(runtime: RuntimeDep, f: PeriodDep, fmt: Format = "json") -> Any:
    return _answer(runtime.statistics.sources(f), fmt, "sources")


@router.get("/drones", summary="Missions, flight hours, battery cycles, utilisation and maintenance per drone")
def drones(runtime: RuntimeDep, f: PeriodDep, fmt: Format = "json") -> Any:
    return _answer(runtime.statistics.drones(f), fmt, "drones")


@router.get("/volume", summary="Incidents per hour of day, day or week")
def volume(
    runtime: RuntimeDep, f: PeriodDep, group_by: Literal["hour", "day", "week"] = "day", fmt: Format = "json"
) -> Any:
    return _answer(runtime.statistics.volume(f, group_by), fmt, "volume")


@router.get("/heatmap", summary="Incidents per square cell of the map (cell centres)")
def heatmap(
    runtime: RuntimeDep, f: PeriodDep, cell_m: Annotated[float, Query(ge=10, le=50_000)] = 500.0, fmt: Format = "json"
) -> Any:
    return _answer(runtime.statistics.heatmap(f, cell_m), fmt, "heatmap")


@router.get(
    "/monthly-report",
    summary="One calendar month's statistics as a PDF for the city (422 for a month not written YYYY-MM)",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "The report"}},
)
def monthly_report(
    runtime: RuntimeDep,
    _: AnyUser,
    scope: ScopeDep,
    month: Annotated[str, Query(max_length=7, description="The month, YYYY-MM")],
) -> Response:
    pdf = monthly_report_pdf(
        runtime.statistics, month, city=runtime.fleet_config.city.upper(), names=district_names(runtime.districts),
        district=runtime.access.stats_district(scope, None),
    )  # fmt: skip
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="monthly-report-{month}.pdf"'},
    )
