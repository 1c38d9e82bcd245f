"""CAP 1.2 (OASIS Common Alerting Protocol) XML → reports.

Public warning feeds (weather and disaster agencies, 112/119 gateways) speak CAP. An ``<alert>``
holds one or more ``<info>`` blocks (often the same warning in several languages), each with
categories, urgency, severity and ``<area>``s described by ``<polygon>`` ("lat,lon lat,lon ...",
closed) and ``<circle>`` ("lat,lon radius_km").

Each placeable info block becomes a Report whose ``area`` is a GeoJSON Polygon / MultiPolygon
(circles approximated by 32-gons) and whose lat/lon is the area's centre. Language variants of
the same warning (same category, severity and geometry) yield one report, in the preferred
language. Messages that should not raise incidents return ``[]``: status other than Actual
(Exercise, Test, System, Draft), msgType Cancel/Ack/Error, and expired info blocks.

The XML goes through defusedxml with DTDs forbidden: CAP needs none, and refusing them stops
entity-expansion ("billion laughs") and external-entity attacks before anything is expanded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from shapely.geometry import MultiPolygon, Polygon, mapping
from shapely.ops import unary_union

from dronedispatch.domain.geo import destination
from dronedispatch.domain.incidents import Category, Report, Severity

from .base import IngestError, Problem, bounded_ref, check_size

SOURCE = "cap"
MAX_CAP_BYTES = 1024 * 1024  # CAP polygons can be long; still bounded
CAP_NAMESPACES = ("urn:oasis:names:tc:emergency:cap:1.2", "urn:oasis:names:tc:emergency:cap:1.1")
CIRCLE_SEGMENTS = 32
FLOOD_WORDS = re.compile(r"flood|inundat|홍수|침수|범람|호우|tsunami|해일", re.IGNORECASE)

SEVERITY = {
    "Extreme": Severity.EXTREME,
    "Severe": Severity.SEVERE,
    "Moderate": Severity.MODERATE,
    "Minor": Severity.MINOR,
}
# CAP categories in the order they decide ours when an info lists several (most specific first)
CATEGORY_ORDER: tuple[tuple[str, Category], ...] = (
    ("Fire", Category.FIRE),
    ("Transport", Category.TRAFFIC_ACCIDENT),
    ("Security", Category.CRIME),
    ("Rescue", Category.MISSING_PERSON),
    ("Met", Category.ENVIRONMENT),  # FLOOD when the event text says so
    ("Geo", Category.ENVIRONMENT),
    ("Infra", Category.FACILITY),
    ("Env", Category.ENVIRONMENT),
    ("CBRNE", Category.ENVIRONMENT),
    ("Health", Category.OTHER),
    ("Safety", Category.OTHER),
    ("Other", Category.OTHER),
)
CAP_CATEGORIES = {name for name, _ in CATEGORY_ORDER}
STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown", "Very Likely")  # the last is CAP 1.1


class _Reader:
    """Namespace-aware child access that records the element path for error messages."""

    def __init__(self, elem: Element, ns: str, path: str) -> None:
        self.elem, self.ns, self.path = elem, ns, path

    def children(self, tag: str) -> list[_Reader]:
        found = self.elem.findall(f"{{{self.ns}}}{tag}")
        return [_Reader(e, self.ns, f"{self.path}.{tag}[{i}]") for i, e in enumerate(found)]

    def texts(self, tag: str) -> list[str]:
        return [(e.text or "").strip() for e in self.elem.findall(f"{{{self.ns}}}{tag}")]

    def choice(self, tag: str, allowed: Sequence[str]) -> str:
        """A required element whose value must be one of the CAP code values."""
        value = self.text(tag) or ""
        if value not in allowed:
            raise IngestError.at(SOURCE, f"{self.path}.{tag}", f"{value[:30]!r} is not one of {', '.join(allowed)}")
        return value

    def text(self, tag: str, required: bool = True) -> str | None:
        elem = self.elem.find(f"{{{self.ns}}}{tag}")
        value = (elem.text or "").strip() if elem is not None else ""
        if not value:
            if required:
                raise IngestError.at(SOURCE, f"{self.path}.{tag}", "required element missing or empty")
            return None
        return value


def _time(path: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise IngestError.at(SOURCE, path, f"not a CAP dateTime: {value[:60]!r}") from None
    if parsed.tzinfo is None:
        raise IngestError.at(SOURCE, path, f"dateTime needs a UTC offset: {value[:60]!r}")
    return parsed


def _point(path: str, text: str) -> tuple[float, float]:
    """``"lat,lon"`` → (lat, lon), range-checked."""
    try:
        lat_s, lon_s = text.split(",")
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        raise IngestError.at(SOURCE, path, f"expected 'lat,lon', got {text[:40]!r}") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise IngestError.at(SOURCE, path, f"point {lat},{lon} outside WGS84 range")
    return lat, lon


def parse_polygon(path: str, text: str) -> Polygon:
    points = [_point(path, pair) for pair in text.split()]
    if len(points) < 4:
        raise IngestError.at(SOURCE, path, f"a polygon needs at least 4 points, got {len(points)}")
    if points[0] != points[-1]:
        raise IngestError.at(SOURCE, path, "polygon is not closed (the first and last points must be equal)")
    poly = Polygon([(lon, lat) for lat, lon in points])
    if not poly.is_valid or poly.area == 0:
        raise IngestError.at(SOURCE, path, "polygon is degenerate or self-intersecting")
    return poly


def parse_circle(path: str, text: str) -> Polygon:
    parts = text.split()
    if len(parts) != 2:
        raise IngestError.at(SOURCE, path, f"expected 'lat,lon radius_km', got {text[:60]!r}")
    lat, lon = _point(path, parts[0])
    try:
        radius_km = float(parts[1])
    except ValueError:
        raise IngestError.at(SOURCE, path, f"radius is not a number: {parts[1][:20]!r}") from None
    if not 0 <= radius_km <= 1000:
        raise IngestError.at(SOURCE, path, f"radius {radius_km} km out of range 0-1000")
    radius_m = max(radius_km * 1000, 1.0)  # CAP allows radius 0 (a point): give it a 1 m footprint
    ring = [destination(lat, lon, 360 * k / CIRCLE_SEGMENTS, radius_m) for k in range(CIRCLE_SEGMENTS)]
    return Polygon([(p_lon, p_lat) for p_lat, p_lon in ring])


def _category(codes: Sequence[str], event_text: str) -> Category:
    for name, category in CATEGORY_ORDER:
        if name in codes:
            if name in ("Met", "Geo") and FLOOD_WORDS.search(event_text):
                return Category.FLOOD
            return category
    return Category.OTHER


def _severity(severity: str, urgency: str) -> Severity:
    if severity in SEVERITY:
        return SEVERITY[severity]
    return Severity.SEVERE if urgency == "Immediate" else Severity.MODERATE  # "Unknown"


def _areas(info: _Reader) -> tuple[Polygon | MultiPolygon | None, list[str]]:
    shapes: list[Polygon] = []
    names: list[str] = []
    for area in info.children("area"):
        names.append(area.text("areaDesc") or "")
        shapes += [parse_polygon(p.path, p.elem.text or "") for p in area.children("polygon")]
        shapes += [parse_circle(c.path, c.elem.text or "") for c in area.children("circle")]
    if not shapes:
        return None, names
    if len(shapes) == 1:
        return shapes[0], names
    merged = unary_union(shapes)  # overlapping areas would make an invalid MultiPolygon
    return (merged if isinstance(merged, Polygon | MultiPolygon) else None), names


def _parse_xml(payload: bytes | str) -> Element:
    check_size(SOURCE, payload, MAX_CAP_BYTES)
    try:
        return SafeET.fromstring(payload, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise IngestError.at(
            SOURCE, "$", f"XML with a DTD or entity declarations is refused ({type(exc).__name__}); CAP needs none"
        ) from None
    except ParseError as exc:
        raise IngestError.at(SOURCE, "$", f"not well-formed XML: {exc}") from None


def parse_cap(
    payload: bytes | str,
    now: datetime,
    *,
    statuses: Sequence[str] = ("Actual",),
    languages: Sequence[str] = ("ko", "en"),
) -> list[Report]:
    """CAP XML → one Report per distinct placeable info block; IngestError naming the element when invalid."""
    root = _parse_xml(payload)
    ns, _, local = root.tag[1:].partition("}") if root.tag.startswith("{") else ("", "", root.tag)
    if local != "alert" or ns not in CAP_NAMESPACES:
        found = f"{{{ns}}}{local}" if ns else local
        expected = f"{{{CAP_NAMESPACES[0]}}}alert"
        raise IngestError.at(SOURCE, "$", f"not a CAP alert: root element is {found}, expected {expected}")
    alert = _Reader(root, ns, "alert")
    identifier = alert.text("identifier") or ""
    sender = alert.text("sender") or ""
    sent = _time("alert.sent", alert.text("sent") or "")
    status = alert.choice("status", STATUSES)
    msg_type = alert.choice("msgType", MSG_TYPES)
    alert.text("scope", required=ns == CAP_NAMESPACES[0])
    if status not in statuses or msg_type not in ("Alert", "Update"):
        return []

    infos = alert.children("info")

    def rank(info: _Reader) -> int:
        lang = (info.text("language", required=False) or "en-US").split("-")[0].lower()
        return languages.index(lang) if lang in languages else len(languages)

    reports: list[Report] = []
    seen: set[tuple[Any, ...]] = set()
    unplaced: list[Problem] = []
    raw_xml = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    for info in sorted(infos, key=rank):
        codes = info.texts("category")
        if not codes:
            raise IngestError.at(SOURCE, f"{info.path}.category", "required element missing")
        if unknown := [c for c in codes if c not in CAP_CATEGORIES]:
            raise IngestError.at(SOURCE, f"{info.path}.category", f"unknown CAP category {unknown[0][:30]!r}")
        event = info.text("event") or ""
        urgency = info.choice("urgency", URGENCIES)
        severity_text = info.choice("severity", (*SEVERITY, "Unknown"))
        info.choice("certainty", CERTAINTIES)
        expires = info.text("expires", required=False)
        if expires and _time(f"{info.path}.expires", expires) < now:
            continue
        headline = info.text("headline", required=False) or event
        shape, area_names = _areas(info)
        if shape is None:
            unplaced.append(Problem(info.path, "no area with a polygon or circle (geocodes alone cannot be placed)"))
            continue
        category = _category(codes, f"{event} {headline}")
        severity = _severity(severity_text, urgency)
        geometry = mapping(shape)
        key = (category, severity, shape.wkb)
        if key in seen:  # the same warning in another language
            continue
        seen.add(key)
        centre = shape.centroid if shape.contains(shape.centroid) else shape.representative_point()
        text = "\n".join(t for t in (headline, info.text("description", required=False), "; ".join(area_names)) if t)
        reports.append(
            Report(
                source=SOURCE,
                source_ref=bounded_ref(f"cap:{sender}:{identifier}" + (f"#{len(reports)}" if reports else "")),
                category=category,
                severity=severity,
                lat=round(centre.y, 7),
                lon=round(centre.x, 7),
                area={"type": geometry["type"], "coordinates": _lists(geometry["coordinates"])},
                observed_at=sent,
                description=text[:2000],
                raw={
                    "identifier": identifier,
                    "sender": sender,
                    "sent": sent.isoformat(),
                    "event": event,
                    "urgency": urgency,
                    "severity": severity_text,
                    "categories": codes,
                    "xml": raw_xml,
                },
            )
        )
    if not reports and unplaced:
        raise IngestError(SOURCE, unplaced)
    return reports


def _lists(value: Any) -> Any:
    """Shapely's nested tuples → JSON-style lists."""
    if isinstance(value, tuple | list):
        return [_lists(v) for v in value]
    return value
