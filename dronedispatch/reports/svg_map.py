"""A small map as an inline SVG string: district outlines, airspace zones, flown tracks and points.

Drawn on the server so that a record shows the same map in a browser, in its PDF and offline
(no tiles, no script). The view fits the tracks and points with a margin; outlines and zones
that reach beyond it are clipped. Positions are projected equirectangularly about the view's
centre, which at city scale is as good as any projection.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

#: Metres per degree of latitude.
_M_PER_DEG = 111_320.0

#: Colours of the tracks, in the order of the missions.
TRACK_COLOURS = ("#1f6feb", "#d1242f", "#1a7f37", "#8250df", "#bf8700", "#0a7ea4")

#: Fill and stroke of airspace zones by rule.
ZONE_STYLE = {
    "prohibited": ("#d1242f", 0.18),
    "approval": ("#bf8700", 0.12),
}


@dataclass(frozen=True)
class Track:
    label: str
    points: Sequence[tuple[float, float]]  # (lat, lon) in flight order


@dataclass(frozen=True)
class MapPoint:
    label: str
    lat: float
    lon: float
    kind: str = "incident"  # incident | report | camera | dock


_POINT_STYLE = {
    "incident": ("#d1242f", 7.0),
    "report": ("#bf8700", 4.5),
    "camera": ("#0a7ea4", 4.5),
    "dock": ("#1a7f37", 4.5),
}


@dataclass(frozen=True)
class _View:
    """The projection from (lat, lon) to SVG pixels."""

    lat0: float
    lon0: float
    m_per_px: float
    width: int
    height: int
    kx: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kx", math.cos(math.radians(self.lat0)))

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        x = (lon - self.lon0) * _M_PER_DEG * self.kx / self.m_per_px + self.width / 2
        y = (self.lat0 - lat) * _M_PER_DEG / self.m_per_px + self.height / 2
        return x, y


def _fit(positions: Sequence[tuple[float, float]], width: int, height: int, min_span_m: float, margin: float) -> _View:
    lats = [p[0] for p in positions]
    lons = [p[1] for p in positions]
    lat0, lon0 = (min(lats) + max(lats)) / 2, (min(lons) + max(lons)) / 2
    kx = math.cos(math.radians(lat0))
    span_x = max((max(lons) - min(lons)) * _M_PER_DEG * kx, min_span_m)
    span_y = max((max(lats) - min(lats)) * _M_PER_DEG, min_span_m)
    m_per_px = max(span_x / (width * (1 - 2 * margin)), span_y / (height * (1 - 2 * margin)))
    return _View(lat0, lon0, m_per_px, width, height)


def _rings(geometry: Mapping[str, Any]) -> Iterable[Sequence[Sequence[float]]]:
    """The rings of a Polygon or MultiPolygon (GeoJSON: [lon, lat] pairs); nothing for other types."""
    kind, coords = geometry.get("type"), geometry.get("coordinates") or []
    if kind == "Polygon":
        yield from coords
    elif kind == "MultiPolygon":
        for polygon in coords:
            yield from polygon


def _path(view: _View, geometry: Mapping[str, Any]) -> str:
    parts = []
    for ring in _rings(geometry):
        pts = [view.xy(p[1], p[0]) for p in ring if len(p) >= 2]
        if len(pts) >= 3:
            parts.append("M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in pts) + " Z")
    return " ".join(parts)


def _features(collection: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    return list((collection or {}).get("features") or [])


def _scale_bar(m_per_px: float, height: int) -> str:
    """A scale bar of a round length about a fifth of the map's width."""
    target = 120 * m_per_px
    step = 10 ** math.floor(math.log10(target))
    length_m = max(s for s in (step, 2 * step, 5 * step) if s <= target)
    px = length_m / m_per_px
    label = f"{length_m / 1000:g} km" if length_m >= 1000 else f"{length_m:g} m"
    y = height - 14
    return (
        f'<g class="scale"><line x1="12" y1="{y}" x2="{12 + px:.1f}" y2="{y}" stroke="#000" stroke-width="2"/>'
        f'<text x="12" y="{y - 5}" font-size="11">{escape(label)}</text></g>'
    )


def render_map(
    *,
    districts: Mapping[str, Any] | None,
    airspace: Mapping[str, Any] | None,
    tracks: Sequence[Track] = (),
    points: Sequence[MapPoint] = (),
    width: int = 720,
    height: int = 440,
    min_span_m: float = 800.0,
    title: str = "",
) -> str:
    """The map as an ``<svg>`` element (a string). The view fits ``tracks`` and ``points``; with
    neither there is nothing to centre on, and the map shows the districts whole."""
    positions = [p for t in tracks for p in t.points] + [(p.lat, p.lon) for p in points]
    if not positions:
        positions = [(p[1], p[0]) for f in _features(districts) for r in _rings(f.get("geometry") or {}) for p in r]
    if not positions:
        positions = [(0.0, 0.0)]
    view = _fit(positions, width, height, min_span_m, margin=0.08)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="record-map" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title or "map")}">',
        f'<defs><clipPath id="map-clip"><rect width="{width}" height="{height}"/></clipPath></defs>',
        f'<rect width="{width}" height="{height}" fill="#f6f8fa" stroke="#8c959f"/>',
        '<g clip-path="url(#map-clip)">',
    ]
    for f in _features(districts):
        d = _path(view, f.get("geometry") or {})
        if d:
            name = (f.get("properties") or {}).get("name_en") or (f.get("properties") or {}).get("id") or ""
            out.append(
                f'<path class="district" d="{d}" fill="#ffffff" stroke="#6e7781" stroke-width="1" '
                f'stroke-dasharray="4 3"><title>{escape(str(name))}</title></path>'
            )
    for f in _features(airspace):
        props = f.get("properties") or {}
        colour, opacity = ZONE_STYLE.get(str(props.get("rule")), ("#6e7781", 0.08))
        d = _path(view, f.get("geometry") or {})
        if d:
            name = props.get("name_en") or props.get("id") or ""
            out.append(
                f'<path class="zone" d="{d}" fill="{colour}" fill-opacity="{opacity}" stroke="{colour}" '
                f'stroke-width="1.2"><title>{escape(str(name))}</title></path>'
            )
    for i, t in enumerate(tracks):
        if not t.points:
            continue
        colour = TRACK_COLOURS[i % len(TRACK_COLOURS)]
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (view.xy(lat, lon) for lat, lon in t.points))
        x0, y0 = view.xy(*t.points[0])
        out.append(
            f'<g class="track"><polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2.5" '
            f'stroke-linejoin="round" stroke-linecap="round"/>'
            f'<circle cx="{x0:.1f}" cy="{y0:.1f}" r="3.5" fill="{colour}"/><title>{escape(t.label)}</title></g>'
        )
    for p in points:
        colour, r = _POINT_STYLE.get(p.kind, ("#24292f", 4.0))
        x, y = view.xy(p.lat, p.lon)
        out.append(
            f'<g class="point {escape(p.kind)}"><circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{colour}" '
            f'stroke="#fff" stroke-width="1.5"/><text x="{x + r + 3:.1f}" y="{y + 4:.1f}" font-size="11" '
            f'fill="#24292f">{escape(p.label)}</text></g>'
        )
    out.append("</g>")
    if tracks:
        legend_y = 16
        for i, t in enumerate(tracks):
            colour = TRACK_COLOURS[i % len(TRACK_COLOURS)]
            out.append(
                f'<g class="legend"><line x1="{width - 170}" y1="{legend_y}" x2="{width - 150}" y2="{legend_y}" '
                f'stroke="{colour}" stroke-width="3"/><text x="{width - 145}" y="{legend_y + 4}" '
                f'font-size="11">{escape(t.label)}</text></g>'
            )
            legend_y += 16
    out.append(_scale_bar(view.m_per_px, height))
    out.append("</svg>")
    return "".join(out)
