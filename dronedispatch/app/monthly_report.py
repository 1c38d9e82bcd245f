"""The monthly report for the city: one calendar month of the statistics service's tables, as a PDF.

The same service answers the statistics page, so the report and the page agree. Its calls block (database
queries, then WeasyPrint): callers on the event loop run :func:`monthly_report_pdf` in a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dronedispatch.app.errors import Unprocessable
from dronedispatch.app.statistics import StatisticsService
from dronedispatch.reports.monthly import MonthlyData, build_monthly_html, parse_month
from dronedispatch.reports.pdf import html_to_pdf


def district_names(geojson: Mapping[str, Any]) -> dict[str, str]:
    """District id → "한국어 English" from the city's districts GeoJSON."""
    names = {}
    for feature in geojson.get("features", []):
        p = feature.get("properties") or {}
        if p.get("id") is not None:
            names[str(p["id"])] = " ".join(str(n) for n in (p.get("name_ko"), p.get("name_en")) if n)
    return names


def monthly_data(
    stats: StatisticsService, month: str, *, city: str, names: Mapping[str, str], district: str | None = None
) -> MonthlyData:
    """Every table the report prints for ``month`` (``YYYY-MM``), of one ``district`` or (None) the whole
    city; :class:`Unprocessable` for a bad month."""
    try:
        start, end = parse_month(month)
    except ValueError as exc:
        raise Unprocessable(str(exc), "bad_month") from exc
    f = stats.filter(start, end, district)

    def first(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return rows[0] if rows else {}

    return MonthlyData(
        month=month,
        city=city,
        overall=first(stats.response_times(f, "none").rows),
        first_on_scene=first(stats.first_on_scene(f, "none").rows),
        outcomes=first(stats.outcomes(f, "none").rows),
        by_district=stats.response_times(f, "district").rows,
        by_category=stats.response_times(f, "category").rows,
        by_hour=stats.response_times(f, "hour").rows,
        volume_by_day=stats.volume(f, "day").rows,
        sources=stats.sources(f).rows,
        drones=stats.drones(f).rows,
        district_names=names,
    )


def monthly_report_pdf(
    stats: StatisticsService, month: str, *, city: str, names: Mapping[str, str], district: str | None = None
) -> bytes:
    return html_to_pdf(build_monthly_html(monthly_data(stats, month, city=city, names=names, district=district)))
