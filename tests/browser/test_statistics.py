"""The statistics page in chromium against the real service, over a small history written straight into its
store: charts drawn, numbers in the tables, the district filter, a CSV download, the heat map on the
operations map; and the monthly report PDF of the same history through the API."""

from __future__ import annotations

import csv
import io
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import Session

from dronedispatch.store.db import make_engine
from dronedispatch.store.models import Incident, Mission
from tests.browser.conftest import open_page
from tests.e2e.conftest import System, start_system

pytestmark = pytest.mark.browser

SONGDO = (37.3925, 126.6425)
CHEONGNA = (37.5350, 126.6500)


@dataclass(frozen=True)
class Past:
    """One incident of the history: where, what, how it ended, and its mission's times (seconds after the report)."""

    district: str
    at: tuple[float, float]
    category: str
    source: str
    camera: str | None
    outcome: str
    first: str
    mission: tuple[int, int, int] | None  # dispatch, airborne, on scene


# Hand-checked: in the last 30 days 6 incidents, 5 dispatched, a drone first on 3 of 6 (50.0%).
# Songdo: 4 incidents, 3 dispatched, report→on scene [300, 390, 450] s: p50 390 s = 6:30, p90 438 s = 7:18.
# Cheongna: 2 incidents, 2 dispatched, report→dispatch [45, 90] s: p50 67.5 s; report→on scene [615, 720] s.
RECENT = [
    Past("songdo", SONGDO, "fire", "frigate", "cam-songdo-01", "false_alarm", "drone", (60, 90, 390)),
    Past("songdo", SONGDO, "fire", "operator", None, "cleared_without_patrol", "drone", (30, 60, 300)),
    Past("songdo", SONGDO, "traffic_accident", "frigate", "cam-songdo-01", "escalated", "patrol", (120, 150, 450)),
    Past("songdo", SONGDO, "traffic_accident", "webhook", None, "false_alarm", "none", None),
    Past("cheongna", CHEONGNA, "crime", "frigate", "cam-cheongna-02", "cleared_without_patrol", "drone", (45, 75, 615)),
    Past("cheongna", CHEONGNA, "crime", "operator", None, "escalated", "patrol", (90, 120, 720)),
]
# 40 days back: outside the default 30 days and outside the month of the others
OLD = Past("songdo", SONGDO, "fire", "operator", None, "cleared_without_patrol", "drone", (30, 60, 200))


def write_history(url: str, now: datetime) -> datetime:
    """The history in the service's store; returns when the recent incidents were reported (one day, 11-12 h UTC)."""
    base = (now - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            entries = [(base - timedelta(minutes=5 * i), p) for i, p in enumerate(RECENT)]
            entries.append((base - timedelta(days=40), OLD))
            for reported, p in entries:
                incident = Incident(
                    category=p.category,
                    severity=2,
                    status="closed",
                    lat=p.at[0],
                    lon=p.at[1],
                    camera_id=p.camera,
                    source=p.source,
                    description="history",
                    outcome=p.outcome,
                    outcome_code=p.outcome,
                    first_on_scene=p.first,
                    district=p.district,
                    created_at=reported,
                    updated_at=reported,
                    closed_at=reported + timedelta(hours=1),
                )
                s.add(incident)
                s.flush()
                if p.mission is not None:
                    dispatch, airborne, on_scene = (reported + timedelta(seconds=x) for x in p.mission)
                    s.add(
                        Mission(
                            incident_id=incident.id or 0,
                            drone_id="dd-01" if p.district == "songdo" else "dd-02",
                            sysid=1 if p.district == "songdo" else 2,
                            state="completed",
                            template="orbit",
                            created_by="operator",
                            created_at=dispatch,
                            updated_at=now,  # written now: the statistics refresh missions changed since
                            launched_at=airborne,
                            on_scene_at=on_scene,
                            ended_at=on_scene + timedelta(minutes=10),
                        )
                    )
            s.commit()
    finally:
        engine.dispose()
    return base


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The service without video: the statistics need none."""
    yield from start_system(tmp_path_factory.mktemp("system"), vehicles=2, speed_factor=10.0, video=False)


@pytest.fixture(scope="module")
def history(system: System) -> datetime:
    return write_history(system.database.url, datetime.now(UTC))


def shot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / "screenshots" / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def row(page: Page, table: str, first_cell: str):  # type: ignore[no-untyped-def]
    return page.locator(f"[data-table={table}] tbody tr").filter(
        has=page.locator("td:first-child", has_text=first_cell)
    )


def test_statistics_page_charts_tables_csv_and_heat_map(
    system: System, history: datetime, browser: Browser, tmp_path: Path
) -> None:
    op = open_page(browser, system, "operator", lang="ko")
    page = op.page
    page.click("[data-page=stats]")
    stats = page.locator("#stats-body")
    expect(stats).to_have_attribute("data-state", "ready", timeout=20_000)

    # headline numbers of the last 30 days
    expect(page.locator("[data-kpi=incidents] .kpi-v")).to_have_text("6")
    expect(page.locator("[data-kpi=dispatched] .kpi-v")).to_have_text("5")
    expect(page.locator("[data-kpi=fos] .kpi-v")).to_have_text("50.0%")
    # the uPlot charts drew on their canvases
    for chart in ("hour", "week", "volume"):
        expect(page.locator(f"#chart-{chart} canvas").first).to_be_visible()
    expect(page.locator("#chart-outcomes [data-outcome=false_alarm] td.num").first).to_have_text("2")
    # response times by district, busiest first, durations as m:ss
    songdo = row(page, "by-district", "송도")
    expect(songdo.locator("td").nth(1)).to_have_text("4")
    expect(songdo.locator("td").nth(2)).to_have_text("3")
    expect(songdo.locator("td").nth(9)).to_have_text("6:30")  # report→on scene p50
    expect(songdo.locator("td").nth(10)).to_have_text("7:18")  # and p90
    expect(page.locator("[data-table=by-district] tbody tr").first).to_contain_text("송도")
    # cameras with their false-alarm share
    cam = row(page, "sources", "Frigate").filter(has_text="cam-songdo-01")
    expect(cam.locator("td").nth(2)).to_have_text("2")
    expect(cam.locator("td").nth(4)).to_have_text("50.0%")
    expect(row(page, "drones", "dd-01").locator("td").nth(1)).to_have_text("3")
    shot(page, tmp_path, "01-statistics-30-days")
    page.locator("[data-table=drones]").scroll_into_view_if_needed()
    shot(page, tmp_path, "01b-statistics-tables")

    # one district: the tables and the headline follow
    page.select_option("#stats-body select[name=district]", "cheongna")
    expect(page.locator("[data-kpi=incidents] .kpi-v")).to_have_text("2")
    expect(stats).to_have_attribute("data-state", "ready")
    expect(page.locator("[data-table=by-category] tbody tr")).to_have_count(1)
    expect(row(page, "by-category", "범죄").locator("td").nth(1)).to_have_text("2")
    expect(page.locator("[data-table=by-district] tbody tr")).to_have_count(1)

    # the CSV of the same query, fetched with the token and saved
    with page.expect_download() as dl:
        page.click("[data-table=by-district] [data-csv]")
    saved = tmp_path / "by-district.csv"
    dl.value.save_as(saved)
    assert dl.value.suggested_filename.endswith(".csv")
    lines = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert [r["key"] for r in lines] == ["cheongna"]
    assert lines[0]["incidents"] == "2" and float(lines[0]["report_to_dispatch_p50"]) == 67.5

    # this month's report for the city, from the same page
    with page.expect_download() as pdf:
        page.click("[data-action=monthly]")
    assert pdf.value.suggested_filename == f"monthly-report-{datetime.now().strftime('%Y-%m')}.pdf"
    pdf_path = tmp_path / "monthly.pdf"
    pdf.value.save_as(pdf_path)
    assert pdf_path.read_bytes().startswith(b"%PDF")

    # a year: the old incident counts too
    page.select_option("#stats-body select[name=district]", "")
    page.click("[data-preset='365']")
    expect(page.locator("[data-kpi=incidents] .kpi-v")).to_have_text("7")

    # the heat map: one cell at Songdo and one at Cheongna, on the operations map
    page.check("#stats-body input[name=heat]")
    page.click("[data-action=show-map]")
    expect(page.locator("#page-ops")).to_be_visible()
    expect(page.locator("#map path.heat-cell")).to_have_count(2)
    expect(page.locator("#map .heat-legend")).to_contain_text("1 – 5")  # Songdo: 4 recent and the old one
    shot(page, tmp_path, "02-heat-map")
    page.click("[data-page=stats]")
    page.uncheck("#stats-body input[name=heat]")
    page.click("[data-page=ops]")
    expect(page.locator("#map path.heat-cell")).to_have_count(0)

    # English reads too
    page.click("#lang")
    page.click("[data-page=stats]")
    expect(page.locator("[data-table=by-district] h3")).to_have_text("Response times by district")
    expect(stats).to_have_attribute("data-state", "ready")
    shot(page, tmp_path, "03-statistics-year-en")
    assert op.errors == []


def test_monthly_report_pdf_of_the_history(system: System, history: datetime, tmp_path: Path) -> None:
    month = history.strftime("%Y-%m")
    client = system.client("pilot")  # any signed-in role
    try:
        r = client.get("/api/v1/stats/monthly-report", params={"month": month})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/pdf"
        path = tmp_path / "monthly.pdf"
        path.write_bytes(r.content)
        text = " ".join(
            subprocess.run(
                ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
            ).stdout.split()
        )
        # the history's month: 6 incidents (the old one lies in another month), 5 dispatched, 50.0% drone first
        assert month in text
        assert "6 5 50.0%" in text
        assert "송도 Songdo 4 3" in text and "청라 Cheongna 2 2" in text
        assert "cam-songdo-01 frigate 2 1 50.0%" in text
        assert client.get("/api/v1/stats/monthly-report", params={"month": "2026-13"}).status_code == 422
        assert client.get("/api/v1/stats/monthly-report").status_code == 422
    finally:
        client.close()
    unauthenticated = system.client("pilot")
    del unauthenticated.headers["Authorization"]
    assert unauthenticated.get("/api/v1/stats/monthly-report", params={"month": month}).status_code == 401
    unauthenticated.close()
