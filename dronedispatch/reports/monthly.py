"""The monthly report for the city: one month of statistics as a printable HTML document (then PDF).

Input is the statistics service's rows, as the ``/api/v1/stats/...`` routes return them (plain mappings), so
the report and the statistics page always show the same numbers. Korean first, English beside it; charts are
inline SVG from :mod:`dronedispatch.reports.charts`, so the PDF needs nothing from the network.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from html import escape
from typing import Any

from dronedispatch.reports.charts import bar_chart, line_chart

Row = Mapping[str, Any]
MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")

CATEGORY_NAMES = {
    "fire": "화재 Fire",
    "traffic_accident": "교통사고 Traffic accident",
    "crime": "범죄 Crime",
    "missing_person": "실종자 Missing person",
    "flood": "침수 Flood",
    "environment": "환경 Environment",
    "facility": "시설물 Facility",
    "other": "기타 Other",
}
OUTCOMES = (
    ("cleared_without_patrol", "순찰 없이 종결", "cleared without a patrol"),
    ("escalated", "경찰·소방 인계", "escalated"),
    ("false_alarm", "오경보", "false alarm"),
    ("other", "기타", "other"),
    ("open", "미종결", "still open"),
)
INTERVALS = (
    ("report_to_dispatch", "신고→출동", "report→dispatch"),
    ("dispatch_to_airborne", "출동→이륙", "dispatch→airborne"),
    ("airborne_to_on_scene", "이륙→현장", "airborne→on scene"),
    ("report_to_on_scene", "신고→현장", "report→on scene"),
)
BUSIEST_CAMERAS = 10
DRONE_HEAD = ("드론 Drone", "임무 Missions", "비행 시간 Flight hours", "배터리 사이클 Cycles", "가동률 Utilisation", "")


def parse_month(month: str) -> tuple[date, date]:
    """``YYYY-MM`` → (first day, first day of the next month); ValueError for anything else."""
    m = MONTH_RE.match(month)
    if m is None:
        raise ValueError(f"month must be YYYY-MM, not {month!r}")
    year, mon = int(m.group(1)), int(m.group(2))
    start = date(year, mon, 1)
    end = date(year + 1, 1, 1) if mon == 12 else date(year, mon + 1, 1)
    return start, end


@dataclass(frozen=True)
class MonthlyData:
    """One month's statistics, each field in the shape of the matching ``/stats`` route's rows."""

    month: str  # YYYY-MM
    city: str
    overall: Row  # response-times, group_by=none (its only row)
    first_on_scene: Row  # first-on-scene, group_by=none
    outcomes: Row  # outcomes, group_by=none
    by_district: Sequence[Row]  # response-times, group_by=district
    by_category: Sequence[Row]  # response-times, group_by=category
    by_hour: Sequence[Row]  # response-times, group_by=hour
    volume_by_day: Sequence[Row]  # volume, group_by=day
    sources: Sequence[Row]  # sources
    drones: Sequence[Row]  # drones
    district_names: Mapping[str, str] = field(default_factory=dict)  # id → display name


def duration(seconds: float | None) -> str:
    """Seconds as ``m:ss`` (``h:mm:ss`` from an hour); an en dash when there is no value."""
    if seconds is None:
        return "–"
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _pct(share: float | None) -> str:
    return "–" if share is None else f"{share * 100:.1f}%"


def _num(v: float | None, digits: int = 0) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


def _interval(row: Row, name: str, q: str) -> float | None:
    stats = row.get(name) or {}
    value = stats.get(q)
    return None if value is None else float(value)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    th = "".join(f'<th class="{"num" if i >= numeric_from else ""}">{escape(h)}</th>' for i, h in enumerate(head))
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"num" if i >= numeric_from else ""}">{escape(c)}</td>' for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    if not rows:
        body = f'<tr><td colspan="{len(head)}" class="empty">자료 없음 · no data</td></tr>'
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _response_table(rows: Sequence[Row], key_head: str, name_of: Mapping[str, str]) -> str:
    head = [key_head, "사건 Incidents", "출동 Dispatched"]
    for _, ko, en in INTERVALS[:1] + INTERVALS[3:]:
        head += [f"{ko} p50 ({en})", f"{ko} p90"]
    out = []
    for r in sorted(rows, key=lambda r: (-int(r.get("incidents", 0)), str(r.get("key")))):
        key = str(r.get("key") or "")
        line = [name_of.get(key, key or "(없음 · none)"), _num(r.get("incidents")), _num(_dispatched(r))]
        for name, _, _ in INTERVALS[:1] + INTERVALS[3:]:
            line += [duration(_interval(r, name, "p50")), duration(_interval(r, name, "p90"))]
        out.append(line)
    return _table(head, out)


def _dispatched(row: Row) -> int:
    """Incidents with a mission: those with a report→dispatch interval."""
    return int((row.get("report_to_dispatch") or {}).get("n") or 0)


def build_monthly_html(data: MonthlyData) -> str:
    """The whole report as one HTML document (A4, inline CSS and SVG)."""
    start, end = parse_month(data.month)
    o = data.overall
    incidents = int(o.get("incidents", 0))
    fos = data.first_on_scene
    headline = [
        ("사건", "Incidents", _num(incidents)),
        ("출동", "Dispatched", _num(_dispatched(o))),
        ("드론 최초 도착", "Drone first on scene", _pct(fos.get("share"))),
        ("신고→현장 p50", "Report→on scene p50", duration(_interval(o, "report_to_on_scene", "p50"))),
        ("신고→현장 p90", "Report→on scene p90", duration(_interval(o, "report_to_on_scene", "p90"))),
    ]
    cards = "".join(
        f'<div class="card"><div class="v">{escape(v)}</div><div class="k">{escape(ko)}<br>{escape(en)}</div></div>'
        for ko, en, v in headline
    )
    interval_rows = [
        [
            f"{ko} ({en})",
            _num((o.get(name) or {}).get("n")),
            duration(_interval(o, name, "p50")),
            duration(_interval(o, name, "p90")),
        ]
        for name, ko, en in INTERVALS
    ]
    outcome_rows = [
        [f"{ko} ({en})", _num(data.outcomes.get(code, 0)), _pct(_share(data.outcomes.get(code, 0), incidents))]
        for code, ko, en in OUTCOMES
    ]
    by_day = {str(r["key"])[:10]: int(r.get("incidents", 0)) for r in data.volume_by_day}
    days = [date.fromordinal(d) for d in range(start.toordinal(), end.toordinal())]
    volume_svg = bar_chart(
        [f"{d.day}" for d in days],
        {"사건 incidents": [float(by_day.get(d.isoformat(), 0)) for d in days]},
        title="일별 사건 · Incidents per day",
        width=680,
        height=200,
    )
    hours = {int(str(r["key"])): r for r in data.by_hour if str(r.get("key", "")).isdigit()}

    def minutes(h: int, q: str) -> float | None:
        r = hours.get(h)
        v = None if r is None else _interval(r, "report_to_on_scene", q)
        return None if v is None else v / 60

    hour_svg = line_chart(
        [f"{h:02d}" for h in range(24)],
        {"p50": [minutes(h, "p50") for h in range(24)], "p90": [minutes(h, "p90") for h in range(24)]},
        title="시간대별 신고→현장 · Report→on scene by hour of day",
        unit="분 min",
        width=680,
        height=200,
    )
    outcome_svg = bar_chart(
        [ko for _, ko, _ in OUTCOMES],
        {"사건 incidents": [float(data.outcomes.get(code, 0)) for code, _, _ in OUTCOMES]},
        title="처리 결과 · Outcomes",
        width=680,
        height=180,
    )
    cameras = sorted(
        (r for r in data.sources if r.get("camera_id")),
        key=lambda r: (-int(r.get("incidents", 0)), str(r.get("camera_id"))),
    )[:BUSIEST_CAMERAS]
    camera_rows = [
        [
            str(r["camera_id"]),
            str(r.get("source", "")),
            _num(r.get("incidents")),
            _num(r.get("false_alarms")),
            _pct(r.get("false_alarm_share")),
        ]
        for r in cameras
    ]
    by_source: dict[str, list[int]] = {}
    for r in data.sources:
        acc = by_source.setdefault(str(r.get("source", "")), [0, 0])
        acc[0] += int(r.get("incidents", 0))
        acc[1] += int(r.get("false_alarms", 0))
    source_rows = [
        [src, _num(n), _num(f), _pct(_share(f, n))]
        for src, (n, f) in sorted(by_source.items(), key=lambda kv: -kv[1][0])
    ]
    drone_rows = [
        [
            str(r["drone_id"]),
            _num(r.get("missions")),
            _num(r.get("flight_hours"), 1),
            _num(r.get("battery_cycles")),
            _pct(r.get("utilisation")),
            "정비 · maintenance" if r.get("maintenance") else "",
        ]
        for r in sorted(data.drones, key=lambda r: str(r.get("drone_id")))
    ]
    title = f"{data.city} 드론 출동 월간 보고서 · Monthly drone dispatch report — {start:%Y-%m}"
    return f"""<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{_CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
<p class="period">기간 Period: {start.isoformat()} – {(date.fromordinal(end.toordinal() - 1)).isoformat()}</p>
<div class="cards">{cards}</div>
<h2>대응 시간 · Response times</h2>
{_table(["구간 Interval", "건수 n", "p50", "p90"], interval_rows)}
<div class="chart">{hour_svg}</div>
<div class="chart">{volume_svg}</div>
<h2>구역별 · By district</h2>
{_response_table(data.by_district, "구역 District", data.district_names)}
<h2>유형별 · By category</h2>
{_response_table(data.by_category, "유형 Category", CATEGORY_NAMES)}
<h2>처리 결과 · Outcomes</h2>
{_table(["결과 Outcome", "사건 Incidents", "비율 Share"], outcome_rows)}
<div class="chart">{outcome_svg}</div>
<h2>신고 출처 · Sources</h2>
{_table(["출처 Source", "사건 Incidents", "오경보 False alarms", "오경보 비율 Share"], source_rows)}
<h2>사건이 많은 카메라 · Busiest cameras</h2>
{_table(["카메라 Camera", "출처 Source", "사건 Incidents", "오경보 False alarms", "오경보 비율 Share"], camera_rows, 2)}
<h2>드론 · Drones</h2>
{_table(DRONE_HEAD, drone_rows)}
</body></html>
"""


def _share(part: float, whole: float) -> float | None:
    return None if not whole else part / whole


_CSS = """
@page { size: A4; margin: 14mm 12mm; @bottom-right { content: counter(page) " / " counter(pages); font-size: 8pt; } }
body { font-family: "Noto Sans CJK KR", "Noto Sans KR", sans-serif; font-size: 9pt; color: #222; }
h1 { font-size: 15pt; margin: 0 0 2mm; } h2 { font-size: 11pt; margin: 6mm 0 2mm; border-bottom: 1px solid #999; }
.period { color: #555; margin: 0 0 4mm; }
.cards { display: flex; gap: 3mm; } .card { flex: 1; border: 1px solid #bbb; border-radius: 2mm; padding: 2mm 3mm; }
.card .v { font-size: 16pt; font-weight: bold; } .card .k { color: #555; font-size: 8pt; }
table { border-collapse: collapse; width: 100%; margin-bottom: 3mm; page-break-inside: auto; }
th, td { border-bottom: 1px solid #ddd; padding: 1mm 1.5mm; text-align: left; }
th { background: #eef1f6; font-size: 8pt; } .num { text-align: right; font-variant-numeric: tabular-nums; }
td.empty { color: #777; text-align: center; } td:first-child { white-space: nowrap; } tr { page-break-inside: avoid; }
.chart { margin: 2mm 0; page-break-inside: avoid; }
"""
