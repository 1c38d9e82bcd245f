"""The public flight log (no login), served only when DD_PUBLIC_FLIGHT_LOG is true; 404 otherwise.

``/public/flights`` is a plain HTML page (its stylesheet and script under /ui/public/), built from
the same rows as ``/public/flights.json``; both come from the redaction rules in
:mod:`dronedispatch.domain.redaction`, and nothing else is read here.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import HTMLResponse

from dronedispatch.api.deps import RuntimeDep

router = APIRouter(tags=["public"], include_in_schema=False)

#: the period asked for: ISO dates or datetimes, ``from`` inclusive, ``to`` exclusive (default: the last 30 days)
Since = Annotated[datetime | None, Query(alias="from", description="Start (inclusive)")]
Until = Annotated[datetime | None, Query(alias="to", description="End (exclusive)")]
_SVG = 64  # side of each track's drawing, px


def _enabled(runtime: RuntimeDep) -> None:
    if not runtime.settings.public_flight_log:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")


async def _rows(runtime: RuntimeDep, since: datetime | None, until: datetime | None) -> dict[str, Any]:
    _enabled(runtime)
    start, end = runtime.flight_log.period(since, until)
    rows, more = await runtime.flight_log.rows(start, end)
    return {"from": start.isoformat(), "to": end.isoformat(), "rows": rows, "more": more}


@router.get("/public/flights.json")
async def flights_json(
    runtime: RuntimeDep,
    since: Since = None,
    until: Until = None,
) -> dict[str, Any]:
    return await _rows(runtime, since, until)


@router.get("/public/flights", response_class=HTMLResponse)
async def flights_page(
    runtime: RuntimeDep,
    since: Since = None,
    until: Until = None,
) -> HTMLResponse:
    data = await _rows(runtime, since, until)
    return HTMLResponse(render(data), headers={"Cache-Control": "no-store"})


def render(data: dict[str, Any]) -> str:
    """The page: a table of the rows, each track drawn as an SVG line (escaped throughout)."""
    e = html.escape
    rows = "\n".join(
        f'<tr data-start="{e(r["start"])}"><td><time datetime="{e(r["start"])}">{e(r["start"].replace("T", " "))}'
        f'</time></td><td>{e(r["purpose"])}</td><td data-district="{e(r["district"] or "")}">{e(r["district_name"])}'
        f"</td><td>{r['duration_min']:d} min</td><td>{_track_svg(r['track'])}</td></tr>"
        for r in data["rows"]
    )
    empty = "" if data["rows"] else '<p class="empty">No flights in this period.</p>'
    if data["more"]:
        shown = len(data["rows"])
        empty = f'<p class="more">The {shown} newest flights are shown; choose a shorter period for the others.</p>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Drone flight log</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/ui/public/flights.css">
<script src="/ui/public/flights.js" defer></script></head>
<body><main>
<h1>Drone flight log</h1>
<p class="about">Flights of the city's emergency-response drones: when they took off, why, over which district,
for how long and roughly where. Tracks are simplified and coarsened to about 100 m; no video, pictures or
personal details are published. Times are UTC (shown in your time zone where your browser allows).</p>
<form method="get" action="/public/flights" class="period">
<label>From <input type="date" name="from" value="{e(data["from"][:10])}"></label>
<label>To <input type="date" name="to" value="{e(data["to"][:10])}"></label>
<button type="submit">Show</button> <a href="/public/flights.json">JSON</a></form>
<table id="flights"><thead><tr><th>Take-off</th><th>Purpose</th><th>District</th><th>Duration</th>
<th>Track</th></tr></thead><tbody>
{rows}
</tbody></table>{empty}
</main></body></html>
"""


def _track_svg(track: list[list[float]]) -> str:
    if len(track) < 2:
        return '<span class="no-track">–</span>'
    lats = [p[0] for p in track]
    lons = [p[1] for p in track]
    span = max(max(lats) - min(lats), max(lons) - min(lons), 1e-3)
    pad = 4
    scale = (_SVG - 2 * pad) / span
    pts = " ".join(f"{pad + (lon - min(lons)) * scale:.1f},{_SVG - pad - (lat - min(lats)) * scale:.1f}"
                   for lat, lon in track)  # fmt: skip
    coords = ";".join(f"{lat},{lon}" for lat, lon in track)
    return (f'<svg class="track" width="{_SVG}" height="{_SVG}" viewBox="0 0 {_SVG} {_SVG}" data-track="{coords}">'
            f'<polyline points="{pts}"/></svg>')  # fmt: skip
