"""Reports of a run: JUnit XML for CI, and one self-contained HTML page for people.

The HTML page works offline: the map of flown tracks (drawn over the city's district outlines
and airspace zones), the battery and link charts are matplotlib PNGs embedded as base64, and
there is no script or external stylesheet.
"""

from __future__ import annotations

import base64
import html
import io
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from dronedispatch.scenario import coverage
from dronedispatch.scenario.expectations import FAIL, SKIP, responses
from dronedispatch.scenario.runner import RunResult

MAP_MARGIN_DEG = 0.01
ZONE_COLOURS = {"prohibited": "#d62728", "approval": "#ff7f0e", "ceiling": "#9467bd"}


def write_reports(result: RunResult, report_dir: Path) -> tuple[Path, Path]:
    """Write ``junit.xml`` and ``report.html`` into ``report_dir`` (created if needed)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    junit = report_dir / "junit.xml"
    junit.write_bytes(junit_xml(result))
    page = report_dir / "report.html"
    page.write_text(html_report(result), encoding="utf-8")
    return junit, page


# -- JUnit ---------------------------------------------------------------------------------------
def junit_xml(result: RunResult) -> bytes:
    name = result.scenario.spec.name
    verdicts = result.verdicts
    suite = ET.Element(
        "testsuite",
        name=f"scenario.{name}",
        tests=str(len(verdicts) + (1 if result.error else 0)),
        failures=str(sum(v.outcome == FAIL for v in verdicts)),
        errors="1" if result.error else "0",
        skipped=str(sum(v.outcome == SKIP for v in verdicts)),
        time=f"{result.wall_s:.3f}",
    )
    if result.error:
        case = ET.SubElement(suite, "testcase", classname=f"scenario.{name}", name="run")
        ET.SubElement(case, "error", message=result.error).text = result.error
    for v in verdicts:
        case = ET.SubElement(suite, "testcase", classname=f"scenario.{name}", name=v.name)
        if v.outcome == FAIL:
            ET.SubElement(case, "failure", message=v.detail[:500]).text = v.detail
        elif v.outcome == SKIP:
            ET.SubElement(case, "skipped", message=v.detail)
        else:
            ET.SubElement(case, "system-out").text = v.detail
    if result.notes:
        ET.SubElement(suite, "system-out").text = "\n".join(result.notes)
    root = ET.Element("testsuites", name="dronedispatch scenarios")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# -- charts --------------------------------------------------------------------------------------
def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _rings(geometry: dict[str, Any]) -> Iterable[list[list[float]]]:
    kind, coords = geometry.get("type"), geometry.get("coordinates") or []
    if kind == "Polygon":
        yield from coords
    elif kind == "MultiPolygon":
        for poly in coords:
            yield from poly
    elif kind == "LineString":
        yield coords
    elif kind == "MultiLineString":
        yield from coords


def map_png(result: RunResult) -> str:
    rec, fleet = result.recording, result.scenario.fleet
    fig, ax = plt.subplots(figsize=(9, 8))
    # frame what happened (flown tracks and incidents); the docks only when nothing flew
    flown_pts = [(s.lat, s.lon) for t in rec.tracks.values() for s in t if not s.landed or s.armed]
    incident_pts = [(i.location.lat, i.location.lon) for i in result.scenario.spec.incidents if i.location]
    pts = flown_pts + incident_pts or [(d.lat, d.lon) for d in fleet.docks]
    lats = [p[0] for p in pts]
    lons = [p[1] for p in pts]
    for feature in result.districts.get("features", []):
        for ring in _rings(feature.get("geometry") or {}):
            xs, ys = zip(*[(p[0], p[1]) for p in ring], strict=True) if ring else ((), ())
            ax.plot(xs, ys, color="#999999", linewidth=0.6)
    for zone in result.airspace.as_geojson().get("features", []):
        rule = zone.get("properties", {}).get("rule", "")
        for ring in _rings(zone.get("geometry") or {}):
            xs, ys = zip(*[(p[0], p[1]) for p in ring], strict=True) if ring else ((), ())
            ax.fill(xs, ys, color=ZONE_COLOURS.get(rule, "#cccccc"), alpha=0.15, linewidth=0)
            ax.plot(xs, ys, color=ZONE_COLOURS.get(rule, "#cccccc"), linewidth=0.8)
    for drone, samples in sorted(rec.tracks.items()):
        flown = [s for s in samples if not s.landed or s.armed]
        if flown:
            ax.plot([s.lon for s in flown], [s.lat for s in flown], linewidth=1.4, label=drone)
    ax.scatter(
        [d.lon for d in fleet.docks], [d.lat for d in fleet.docks], marker="s", color="black", zorder=5, label="docks"
    )
    for dock in fleet.docks:
        ax.annotate(dock.name_en, (dock.lon, dock.lat), fontsize=7, xytext=(4, 4), textcoords="offset points")
    for inc in result.scenario.spec.incidents:
        arrival = rec.arrivals.get(inc.id)
        point = None
        if arrival is not None and arrival.incident_id in result.facts.incidents:
            i = result.facts.incidents[arrival.incident_id]
            point = (i["lon"], i["lat"])
        elif inc.location is not None:
            point = (inc.location.lon, inc.location.lat)
        if point is not None:
            ax.scatter([point[0]], [point[1]], marker="*", s=90, color="#d62728", zorder=6)
            ax.annotate(inc.id, point, fontsize=7, xytext=(4, -9), textcoords="offset points")
    if lats:
        ax.set_xlim(min(lons) - MAP_MARGIN_DEG, max(lons) + MAP_MARGIN_DEG)
        ax.set_ylim(min(lats) - MAP_MARGIN_DEG, max(lats) + MAP_MARGIN_DEG)
    mid = (min(lats) + max(lats)) / 2 if lats else 0.0
    ax.set_aspect(1 / max(math.cos(math.radians(mid)), 0.1))
    ax.locator_params(nbins=6)
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title("Flown tracks")
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def series_png(result: RunResult, what: str) -> str:
    rec = result.recording
    fig, ax = plt.subplots(figsize=(9, 3.2))
    for drone, samples in sorted(rec.tracks.items()):
        if what == "battery":
            pts = [(s.t, s.battery) for s in samples if s.battery is not None]
        elif what == "link":
            pts = [(s.t, 100.0 * s.loss) for s in samples]
        else:
            pts = [(s.t, s.alt) for s in samples]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], linewidth=1.2, label=drone)
        if what == "link":
            down = [s.t for s in samples if not s.link_ok]
            if down:
                ax.scatter(down, [0.0] * len(down), marker="|", s=120, label=f"{drone} link lost")
    ax.set_xlabel("scenario time, s (simulated)")
    ax.set_ylabel({"battery": "battery, %", "link": "packet loss, %"}.get(what, "altitude, m"))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncol=4, loc="best")
    return _png(fig)


# -- HTML ----------------------------------------------------------------------------------------
def _floor_table(result: RunResult) -> list[str]:
    """Each dispatched mission's response (dispatch click to on scene) against the airframe's physical
    floor: dock door + take-off to the departure height + the routed distance at cruise speed, with the
    rest of the climb overlapped (domain/launch.py)."""
    rs = responses(result.recording, result.facts, result.scenario.fleet)
    if not rs:
        return []
    out = [
        "<h2>Response against the physical floor</h2><p class='muted'>floor = dock door + take-off to the "
        "departure height at the maximum climb rate + max(routed distance / cruise speed, rest of the climb / "
        "climb rate)</p><table><tr><th>mission</th><th>incident</th><th>drone</th><th>dispatch click</th>"
        "<th>on scene</th><th>response</th><th>floor</th><th>ratio</th><th>floor terms</th></tr>"
    ]
    for r in rs:
        out.append(
            f"<tr><td>{r.mission_id}</td><td>{_e(r.ref or '—')}</td><td>{_e(r.drone_id)}</td>"
            f"<td>{r.clicked_at:.1f} s</td><td>{r.on_scene_at:.1f} s</td><td>{r.response_s:.1f} s</td>"
            f"<td>{r.floor.total_s:.1f} s</td><td>{r.ratio:.2f}</td><td>{_e(r.floor.describe())}</td></tr>"
        )
    out.append("</table>")
    return out


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
h1{margin-bottom:0}.pass{color:#1a7f37}.fail{color:#cf222e}.skip{color:#9a6700}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;
vertical-align:top;font-size:14px}th{background:#f6f8fa}img{max-width:100%}.muted{color:#666}
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def html_report(result: RunResult) -> str:
    spec, rec = result.scenario.spec, result.recording
    status = "pass" if result.passed else "fail"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Scenario {_e(spec.name)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Scenario {_e(spec.name)}: <span class='{status}'>{'PASSED' if result.passed else 'FAILED'}</span></h1>",
        f"<p class='muted'>{_e(spec.description)}<br>{len(rec.arrivals)} incidents, {len(rec.missions)} missions, "
        f"{rec.ended_at:.0f} s simulated at speed factor {spec.speed_factor:g} in {result.wall_s:.0f} s; "
        f"seed {spec.seed}; fleet of {len(result.scenario.fleet.drones)} drones</p>",
    ]
    if result.error:
        parts.append(f"<p class='fail'>The run did not complete: {_e(result.error)}</p>")
    parts.append("<h2>Verdicts</h2><table><tr><th>expectation</th><th>result</th><th>detail</th></tr>")
    for v in result.verdicts:
        parts.append(
            f"<tr><td>{_e(v.name)}</td><td class='{v.outcome}'>{v.outcome.upper()}</td><td>{_e(v.detail)}</td></tr>"
        )
    parts.append("</table>")
    if result.notes:
        parts.append("<ul>" + "".join(f"<li class='muted'>{_e(n)}</li>" for n in result.notes) + "</ul>")
    parts.append(
        "<h2>Response per incident</h2><table><tr><th>incident</th><th>via</th><th>sent at</th>"
        "<th>first on scene</th><th>response</th><th>missions</th></tr>"
    )
    for inc in spec.incidents:
        a = rec.arrivals.get(inc.id)
        hit = rec.on_scene_at(inc.id)
        response = rec.response_s(inc.id)
        missions = "; ".join(
            f"{m.id} {m.drone_id} {m.final}" + (f" ({m.reason})" if m.reason else "") for m in rec.missions_for(inc.id)
        )
        if a is not None and a.error:
            missions = f"report refused: {a.error}"
        parts.append(
            f"<tr><td>{_e(inc.id)}</td><td>{_e(inc.via)}</td><td>{a.sent_at:.0f} s</td>"
            f"<td>{_e(hit[1]) if hit else '—'}</td><td>{f'{response:.0f} s' if response is not None else '—'}</td>"
            f"<td>{_e(missions)}</td></tr>"
            if a is not None
            else f"<tr><td>{_e(inc.id)}</td><td>{_e(inc.via)}</td><td colspan='4'>not sent</td></tr>"
        )
    parts.append("</table>")
    parts += _floor_table(result)
    parts += coverage.html_section(rec, result.scenario.fleet, result.facts.incidents)
    if rec.tracks:
        parts.append(f"<h2>Map</h2><img alt='flown tracks' src='data:image/png;base64,{map_png(result)}'>")
        for what, title in (("battery", "Battery"), ("link", "Link: packet loss and outages"), ("alt", "Altitude")):
            parts.append(f"<h2>{title}</h2><img alt='{what}' src='data:image/png;base64,{series_png(result, what)}'>")
    parts.append("<h2>Timeline</h2><table><tr><th>t (s)</th><th>what</th><th>event</th></tr>")
    for t, kind, text in sorted(rec.events, key=lambda e: e[0]):
        parts.append(f"<tr><td>{t:.1f}</td><td>{_e(kind)}</td><td>{_e(text)}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)
