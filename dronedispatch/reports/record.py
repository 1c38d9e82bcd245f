"""The incident record: one HTML page with an incident's whole story, built from plain data.

The page is self-contained (inline CSS, the map as inline SVG, snapshots as ``data:`` URLs), so
the same string is shown in a browser, rendered to PDF (:func:`dronedispatch.reports.pdf.html_to_pdf`)
and put into the evidence package. Every value is escaped: report texts come from outside.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape

#: Order of entries that share a time: what caused comes before what followed.
KIND_ORDER = {"report": 0, "decision": 1, "dispatch": 2, "airborne": 3, "state": 4, "on_scene": 5, "command": 6,
              "handover": 7, "alert": 8, "evidence": 9, "ended": 10, "audit": 11, "close": 12}  # fmt: skip

KIND_LABEL = {
    "report": "보고 Report",
    "decision": "병합 판단 Merge decision",
    "dispatch": "출동 Dispatch",
    "airborne": "이륙 Airborne",
    "state": "임무 상태 Mission state",
    "on_scene": "현장 도착 On scene",
    "command": "조종 명령 Pilot command",
    "handover": "인계 Hand-over",
    "alert": "경보 Alert",
    "evidence": "증거 Evidence",
    "ended": "임무 종료 Mission ended",
    "audit": "기록 Audit",
    "close": "종결 Closed",
}


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # a key of KIND_LABEL
    text: str
    actor: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class ReportLine:
    id: int
    observed_at: datetime
    received_at: datetime
    source: str
    source_ref: str | None
    category: str
    severity: int
    lat: float | None
    lon: float | None
    distance_m: float | None
    camera: str | None  # the camera's name, or its id when the cameras file does not know it
    description: str


@dataclass(frozen=True)
class MissionLine:
    id: int
    drone_id: str
    template: str
    state: str
    reason: str | None
    created_by: str
    created_at: datetime
    launched_at: datetime | None
    on_scene_at: datetime | None
    ended_at: datetime | None
    samples: int  # telemetry samples of its flown track


@dataclass(frozen=True)
class EvidenceLine:
    id: int
    kind: str
    name: str
    media_type: str
    size_bytes: int
    sha256: str
    mission_id: int | None


@dataclass(frozen=True)
class SnapshotImage:
    caption: str
    media_type: str
    data: bytes


@dataclass(frozen=True)
class IncidentRecord:
    id: int
    category: str
    severity: int
    status: str
    lat: float
    lon: float
    district: str | None
    source: str
    camera: str | None
    description: str
    approval_ref: str | None
    outcome: str | None
    created_at: datetime
    closed_at: datetime | None
    split_from_id: int | None
    reports: Sequence[ReportLine]
    missions: Sequence[MissionLine]
    timeline: Sequence[TimelineEntry]
    evidence: Sequence[EvidenceLine]
    snapshots: Sequence[SnapshotImage] = ()
    map_svg: str = ""
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def ordered(entries: Sequence[TimelineEntry]) -> list[TimelineEntry]:
    """In time order; entries at the same instant in the order of :data:`KIND_ORDER`."""
    return sorted(entries, key=lambda e: (_utc(e.at), KIND_ORDER.get(e.kind, 99)))


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _t(t: datetime | None) -> str:
    return _utc(t).strftime("%Y-%m-%d %H:%M:%S UTC") if t else "—"


def _e(value: object) -> str:
    return escape("" if value is None else str(value))


def _metres(d: float | None) -> str:
    if d is None:
        return "—"
    return f"{d / 1000:.2f} km" if d >= 1000 else f"{d:.0f} m"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} GiB"


_CSS = """
@page { size: A4; margin: 14mm 12mm; }
body { font-family: "Noto Sans CJK KR", "Noto Sans KR", "Noto Sans", sans-serif; font-size: 10.5pt; color: #24292f;
       margin: 0 auto; max-width: 1000px; }
h1 { font-size: 17pt; margin: 0 0 4px; } h2 { font-size: 12.5pt; margin: 18px 0 6px; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; width: 100%; margin: 4px 0; table-layout: fixed; }
th, td { border: 1px solid #d0d7de; padding: 3px 5px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
table.timeline col.time { width: 19%; } table.timeline col.kind { width: 17%; } table.timeline col.who { width: 14%; }
table.reports col.n, table.evidence col.n, table.missions col.n { width: 5%; }
th { background: #f6f8fa; font-weight: 600; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; margin: 6px 0; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
td.time { font-variant-numeric: tabular-nums; }
code.hash { font-family: "Noto Sans Mono", monospace; font-size: 8pt; word-break: break-all; }
figure { display: inline-block; margin: 4px 8px 4px 0; } figure img { max-width: 320px; max-height: 240px; }
figcaption { font-size: 9pt; color: #57606a; }
.record-map { width: 100%; height: auto; }
.muted { color: #57606a; } .map { page-break-inside: avoid; }
"""


def _head(cls: str, columns: Sequence[tuple[str, str]]) -> str:
    """A table's opening: its class, column classes (for widths) and header cells."""
    cols = "".join(f"<col class='{c}'>" if c else "<col>" for _, c in columns)
    cells = "".join(f"<th>{label}</th>" for label, _ in columns)
    return f"<table class='{cls}'>{cols}<thead><tr>{cells}</tr></thead><tbody>"


def render_record(r: IncidentRecord) -> str:
    """The complete HTML document of the record."""
    h: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="ko"><head><meta charset="utf-8">',
        f"<title>사건 기록 Incident record #{r.id}</title><style>{_CSS}</style></head><body>",
        f"<h1>사건 기록 Incident record #{r.id}</h1>",
        f'<p class="muted">생성 Generated {_t(r.generated_at)}</p>',
        '<dl class="facts">',
        f"<dt>분류 Category</dt><dd>{_e(r.category)} (severity {r.severity})</dd>",
        f"<dt>상태 Status</dt><dd>{_e(r.status)}</dd>",
        f"<dt>위치 Position</dt><dd>{r.lat:.6f}, {r.lon:.6f}</dd>",
        f"<dt>구역 District</dt><dd>{_e(r.district or '—')}</dd>",
        f"<dt>최초 출처 First source</dt><dd>{_e(r.source)}</dd>",
        f"<dt>카메라 Camera</dt><dd>{_e(r.camera or '—')}</dd>",
        f"<dt>접수 Opened</dt><dd>{_t(r.created_at)}</dd>",
        f"<dt>종결 Closed</dt><dd>{_t(r.closed_at)}</dd>",
        f"<dt>결과 Outcome</dt><dd>{_e(r.outcome or '—')}</dd>",
    ]
    if r.approval_ref:
        h.append(f"<dt>승인 Approval</dt><dd>{_e(r.approval_ref)}</dd>")
    if r.split_from_id is not None:
        h.append(f"<dt>분리 Split from</dt><dd>incident #{r.split_from_id}</dd>")
    h.append("</dl>")
    if r.description:
        h.append(f"<p>{_e(r.description).replace(chr(10), '<br>')}</p>")

    h.append(f"<h2>보고 Reports ({len(r.reports)})</h2>")
    h.append(
        _head(
            "reports",
            [
                ("#", "n"),
                ("관측 Observed", ""),
                ("출처 Source", ""),
                ("카메라 Camera", ""),
                ("사건과 거리 Distance", ""),
                ("심각도 Severity", ""),
                ("내용 Description", ""),
            ],
        )
    )
    for rep in r.reports:
        source = rep.source + (f" ({rep.source_ref})" if rep.source_ref else "")
        h.append(
            f"<tr><td>{rep.id}</td><td class='time'>{_t(rep.observed_at)}</td><td>{_e(source)}</td>"
            f"<td>{_e(rep.camera or '—')}</td><td>{_metres(rep.distance_m)}</td><td>{rep.severity}</td>"
            f"<td>{_e(rep.description)}</td></tr>"
        )
    h.append("</tbody></table>")

    h.append("<h2>경과 Timeline</h2>")
    h.append(_head("timeline", [("시각 Time", "time"), ("구분 Kind", "kind"), ("내용 What", ""), ("누가 Who", "who")]))
    for e in ordered(r.timeline):
        detail = f"<br><span class='muted'>{_e(e.detail)}</span>" if e.detail else ""
        h.append(
            f"<tr class='entry {_e(e.kind)}'><td class='time'>{_t(e.at)}</td>"
            f"<td class='kind'>{_e(KIND_LABEL.get(e.kind, e.kind))}</td><td>{_e(e.text)}{detail}</td>"
            f"<td>{_e(e.actor or '')}</td></tr>"
        )
    h.append("</tbody></table>")

    if r.missions:
        h.append("<h2>임무 Missions</h2>")
        h.append(
            _head(
                "missions",
                [
                    ("#", "n"),
                    ("드론 Drone", ""),
                    ("템플릿 Template", ""),
                    ("출동 Dispatched by", ""),
                    ("이륙 Airborne", ""),
                    ("현장 On scene", ""),
                    ("종료 Ended", ""),
                    ("결과 State", ""),
                    ("항적 Track", ""),
                ],
            )
        )
        for m in r.missions:
            state = m.state + (f": {m.reason}" if m.reason else "")
            h.append(
                f"<tr><td>{m.id}</td><td>{_e(m.drone_id)}</td><td>{_e(m.template)}</td>"
                f"<td>{_e(m.created_by)}<br>{_t(m.created_at)}</td><td class='time'>{_t(m.launched_at)}</td>"
                f"<td class='time'>{_t(m.on_scene_at)}</td><td class='time'>{_t(m.ended_at)}</td>"
                f"<td>{_e(state)}</td><td>{m.samples} samples</td></tr>"
            )
        h.append("</tbody></table>")

    if r.map_svg:
        h.append(f"<h2>지도 Map</h2><div class='map'>{r.map_svg}</div>")

    if r.snapshots:
        h.append("<h2>현장 사진 On-scene snapshots</h2>")
        for s in r.snapshots:
            data = base64.b64encode(s.data).decode("ascii")
            h.append(
                f"<figure><img src='data:{_e(s.media_type)};base64,{data}' alt='{_e(s.caption)}'>"
                f"<figcaption>{_e(s.caption)}</figcaption></figure>"
            )

    h.append("<h2>증거 파일 Evidence files</h2>")
    if r.evidence:
        h.append(
            _head(
                "evidence",
                [
                    ("#", "n"),
                    ("종류 Kind", ""),
                    ("파일 File", ""),
                    ("임무 Mission", ""),
                    ("크기 Size", ""),
                    ("SHA-256", ""),
                ],
            )
        )
        for ev in r.evidence:
            h.append(
                f"<tr><td>{ev.id}</td><td>{_e(ev.kind)}</td><td>{_e(ev.name)}</td><td>{_e(ev.mission_id or '—')}</td>"
                f"<td>{_size(ev.size_bytes)}</td><td><code class='hash'>{_e(ev.sha256)}</code></td></tr>"
            )
        h.append("</tbody></table>")
    else:
        h.append("<p class='muted'>없음 None</p>")
    h.append("</body></html>")
    return "\n".join(h)
