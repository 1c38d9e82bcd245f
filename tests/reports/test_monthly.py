"""The monthly report: a hand-built month of statistics comes out of the PDF (read back with pdftotext)."""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from dronedispatch.reports.monthly import MonthlyData, build_monthly_html, duration, parse_month
from dronedispatch.reports.pdf import html_to_pdf


def times(n: int, p50: float | None, p90: float | None) -> dict[str, Any]:
    return {"p50": p50, "p90": p90, "n": n}


def response_row(key: str, incidents: int, dispatched: int, p50: float | None, p90: float | None) -> dict[str, Any]:
    return {
        "key": key,
        "incidents": incidents,
        "report_to_dispatch": times(dispatched, 45.0, 95.0),
        "dispatch_to_airborne": times(dispatched, 30.0, 50.0),
        "airborne_to_on_scene": times(dispatched, 200.0, 400.0),
        "report_to_on_scene": times(dispatched, p50, p90),
    }


def month_fixture() -> MonthlyData:
    return MonthlyData(
        month="2026-02",
        city="Incheon",
        overall=response_row("all", 137, 96, 412.0, 1089.0),
        first_on_scene={"key": "all", "incidents": 137, "drone_first": 61, "share": 61 / 137},
        outcomes={
            "key": "all",
            "cleared_without_patrol": 58,
            "escalated": 31,
            "false_alarm": 23,
            "other": 9,
            "open": 16,
        },
        by_district=[
            response_row("songdo", 81, 60, 388.0, 901.0),
            response_row("cheongna", 56, 36, 455.0, 1203.0),
        ],
        by_category=[response_row("fire", 44, 40, 371.0, 812.0), response_row("traffic_accident", 93, 56, 430.0, None)],
        by_hour=[response_row("3", 5, 4, 600.0, 900.0), response_row("14", 12, 9, 300.0, 480.0)],
        volume_by_day=[{"key": "2026-02-01", "incidents": 7}, {"key": "2026-02-28", "incidents": 3}],
        sources=[
            {
                "source": "frigate",
                "camera_id": "cam-songdo-07",
                "incidents": 29,
                "false_alarms": 11,
                "false_alarm_share": 11 / 29,
            },
            {
                "source": "frigate",
                "camera_id": "cam-cheongna-02",
                "incidents": 14,
                "false_alarms": 1,
                "false_alarm_share": 1 / 14,
            },
            {"source": "webhook", "camera_id": None, "incidents": 94, "false_alarms": 11, "false_alarm_share": 11 / 94},
        ],
        drones=[
            {
                "drone_id": "ifez-03",
                "missions": 41,
                "flight_hours": 17.25,
                "battery_cycles": 44,
                "utilisation": 0.0237,
                "maintenance": False,
            },
            {
                "drone_id": "ifez-01",
                "missions": 55,
                "flight_hours": 22.5,
                "battery_cycles": 58,
                "utilisation": 0.031,
                "maintenance": True,
            },
        ],
        district_names={"songdo": "송도 Songdo", "cheongna": "청라 Cheongna"},
    )


@pytest.mark.parametrize(
    ("month", "start", "end"),
    [("2026-02", date(2026, 2, 1), date(2026, 3, 1)), ("2025-12", date(2025, 12, 1), date(2026, 1, 1))],
)
def test_a_month_is_its_first_day_to_the_next_months_first_day(month: str, start: date, end: date) -> None:
    assert parse_month(month) == (start, end)


@pytest.mark.parametrize("bad", ["2026-13", "2026-2", "26-02", "2026-02-01", "", "2026-00"])
def test_anything_but_yyyy_mm_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_month(bad)


def test_durations_read_as_minutes_and_seconds() -> None:
    assert [duration(v) for v in (None, 0, 59.6, 412, 3600, 3725)] == [
        "–",
        "0:00",
        "1:00",
        "6:52",
        "1:00:00",
        "1:02:05",
    ]


def test_the_pdf_carries_the_months_numbers(tmp_path: Path) -> None:
    html = build_monthly_html(month_fixture())
    pdf = html_to_pdf(html)
    assert pdf.startswith(b"%PDF")
    path = tmp_path / "monthly.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True).stdout
    flat = " ".join(text.split())
    # headline: incidents, dispatched, drone first on scene 61/137, report→on scene p50 412 s and p90 1089 s
    assert "2026-02" in flat and "Incheon" in flat
    for expected in ("137", "96", "44.5%", "6:52", "18:09"):
        assert expected in flat, expected
    assert "2026-02-01 – 2026-02-28" in flat
    # by district, with names; by category (the p90 no one measured is a dash)
    assert "송도 Songdo 81 60 0:45 1:35 6:28 15:01" in flat
    assert "청라 Cheongna 56 36 0:45 1:35 7:35 20:03" in flat
    assert "Traffic accident 93 56 0:45 1:35 7:10 –" in flat
    # outcomes with their share of the month's incidents
    assert "false alarm) 23 16.8%" in flat
    assert "still open) 16 11.7%" in flat
    # cameras, busiest first, with false-alarm shares; sources summed
    assert flat.index("cam-songdo-07") < flat.index("cam-cheongna-02")
    assert "cam-songdo-07 frigate 29 11 37.9%" in flat
    assert "frigate 43 12 27.9%" in flat
    # drones: flight hours, cycles, utilisation, maintenance flag
    assert "ifez-01 55 22.5 58 3.1% 정비 · maintenance" in flat
    assert "ifez-03 41 17.2 44 2.4%" in flat or "ifez-03 41 17.3 44 2.4%" in flat
    # the three charts are inline SVG
    assert html.count("<svg") == 3
