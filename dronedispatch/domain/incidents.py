"""Incidents and the reports that form them (fields after FIWARE's Alert model and CAP 1.2)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, Field

from dronedispatch.domain.geo import distance_m


class Category(StrEnum):
    FIRE = "fire"
    TRAFFIC_ACCIDENT = "traffic_accident"
    CRIME = "crime"
    MISSING_PERSON = "missing_person"
    FLOOD = "flood"
    ENVIRONMENT = "environment"
    FACILITY = "facility"
    OTHER = "other"


class Severity(IntEnum):
    """Higher is more urgent (CAP: Minor 1 … Extreme 4)."""

    MINOR = 1
    MODERATE = 2
    SEVERE = 3
    EXTREME = 4


class IncidentStatus(StrEnum):
    OPEN = "open"
    DISPATCHED = "dispatched"
    CLOSED = "closed"


class Report(BaseModel):
    """One observation from one source; several reports of the same event merge into one incident."""

    source: str = Field(description="Where it came from: webhook, mqtt, frigate, cap, operator, generator.")
    source_ref: str | None = Field(default=None, description="The source's own id for this report, if any.")
    category: Category
    severity: Severity = Severity.MODERATE
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    area: dict | None = Field(default=None, description="GeoJSON polygon when the report covers an area.")
    camera_id: str | None = Field(default=None, description="Fixed camera or sensor that raised it.")
    observed_at: datetime
    description: str = ""
    raw: dict | None = Field(default=None, description="The source's payload as received, kept as evidence.")


# --- locating and merging reports (pure) ------------------------------------------------------
#
# Several sources often report one event: two cameras see the same smoke, a 119 call follows a
# sensor alarm, Frigate re-sends a review. Each report is matched against the incidents still
# open; a match merges into that incident (which keeps its first position, so a drone already
# flying there is not redirected), otherwise the report opens a new incident. One event, one
# incident, one dispatch.


class LocationError(ValueError):
    """A report has no usable position (no coordinates, and no known camera)."""


class AssetLookup(Protocol):
    def get(self, asset_id: str) -> Any: ...  # an object with .lat/.lon (and optionally view_point())


def locate_report(report: Report, assets: AssetLookup | None) -> Report:
    """The report with a position: its own coordinates, else its camera's from the registry.

    A camera with a view direction places the report at the point it looks at (half its range),
    which is where the event is, rather than at the mast.
    """
    if report.lat is not None and report.lon is not None:
        return report
    if report.area:
        try:
            c = _area_centroid(report.area)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise LocationError(f"report area is not a GeoJSON Polygon or LineString: {exc}") from exc
        return report.model_copy(update={"lat": c[0], "lon": c[1]})
    if report.camera_id:
        asset = assets.get(report.camera_id) if assets is not None else None
        if asset is None:
            raise LocationError(f"unknown camera {report.camera_id!r} and the report has no coordinates")
        lat, lon = asset.view_point() if hasattr(asset, "view_point") else (asset.lat, asset.lon)
        return report.model_copy(update={"lat": lat, "lon": lon})
    raise LocationError("report has neither coordinates, an area nor a camera id")


def _area_centroid(area: dict) -> tuple[float, float]:
    geom = area.get("geometry", area)
    coords = geom["coordinates"][0] if geom["type"] == "Polygon" else geom["coordinates"]
    pts = coords[:-1] if len(coords) > 1 and coords[0] == coords[-1] else coords
    return (sum(p[1] for p in pts) / len(pts), sum(p[0] for p in pts) / len(pts))


#: How far apart two reports of one event may be, by category (metres).
DEFAULT_MERGE_RADIUS_M: dict[Category, float] = {
    Category.FIRE: 500.0,  # smoke is seen from afar
    Category.FLOOD: 1000.0,
    Category.MISSING_PERSON: 1000.0,
    Category.ENVIRONMENT: 1000.0,
    Category.TRAFFIC_ACCIDENT: 250.0,
    Category.CRIME: 250.0,
    Category.FACILITY: 150.0,
    Category.OTHER: 200.0,
}


#: How long after an incident's first report a new report may still merge into it, by category.
#: Without it an incident kept alive by a report every half hour would absorb reports for hours.
DEFAULT_MERGE_MAX_AGE: dict[Category, timedelta] = {c: timedelta(hours=2) for c in Category}


@dataclass(frozen=True)
class MergePolicy:
    radius_m: Mapping[Category, float] = field(default_factory=lambda: dict(DEFAULT_MERGE_RADIUS_M))
    window: timedelta = timedelta(minutes=30)  # since the incident's latest report
    max_age: Mapping[Category, timedelta] = field(default_factory=lambda: dict(DEFAULT_MERGE_MAX_AGE))

    def radius(self, category: Category) -> float:
        return self.radius_m.get(category, DEFAULT_MERGE_RADIUS_M[Category.OTHER])

    def age_limit(self, category: Category) -> timedelta:
        """Since the incident's first report (see :data:`DEFAULT_MERGE_MAX_AGE`)."""
        return self.max_age.get(category, DEFAULT_MERGE_MAX_AGE[Category.OTHER])


@dataclass(frozen=True)
class OpenIncident:
    """What merging needs to know about an incident that is not closed."""

    id: Any
    category: Category
    lat: float
    lon: float
    first_seen: datetime
    last_seen: datetime
    severity: Severity = Severity.MODERATE
    status: IncidentStatus = IncidentStatus.OPEN
    camera_ids: frozenset[str] = frozenset()
    source_refs: frozenset[tuple[str, str]] = frozenset()  # (source, source_ref) of its reports
    report_count: int = 1

    @classmethod
    def from_report(cls, incident_id: Any, report: Report) -> OpenIncident:
        if report.lat is None or report.lon is None:
            raise LocationError("locate the report (locate_report) before opening an incident from it")
        return cls(
            id=incident_id, category=report.category, lat=report.lat, lon=report.lon,
            first_seen=report.observed_at, last_seen=report.observed_at, severity=report.severity,
            camera_ids=frozenset({report.camera_id} if report.camera_id else ()),
            source_refs=frozenset({(report.source, report.source_ref)} if report.source_ref else ()),
        )

    def merged(self, report: Report) -> OpenIncident:
        """This incident after absorbing ``report``: position kept, severity the highest seen."""
        return replace(
            self,
            last_seen=max(self.last_seen, report.observed_at),
            first_seen=min(self.first_seen, report.observed_at),
            severity=max(self.severity, report.severity),
            camera_ids=self.camera_ids | ({report.camera_id} if report.camera_id else set()),
            source_refs=self.source_refs | ({(report.source, report.source_ref)} if report.source_ref else set()),
            report_count=self.report_count + 1,
        )


def _utc(t: datetime) -> datetime:
    """Naive times (as some databases return them) are taken as UTC, so they compare with aware ones."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


@dataclass(frozen=True)
class MergeDecision:
    """``incident_id`` is None when the report opens a new incident."""

    incident_id: Any
    reason: str
    distance_m: float | None = None
    duplicate: bool = False  # the very same report delivered again (same source and source_ref)

    @property
    def is_new(self) -> bool:
        return self.incident_id is None


def within_merge_window(report_seen: datetime, incident: OpenIncident, policy: MergePolicy) -> bool:
    """Whether a report observed at ``report_seen`` is close enough in time to ``incident`` to merge:
    within the window of its latest report (or before its first by no more than the window), and
    no later than the category's age limit after its first report."""
    seen, first, last = _utc(report_seen), _utc(incident.first_seen), _utc(incident.last_seen)
    if seen - last > policy.window or first - seen > policy.window:
        return False
    return seen - first <= policy.age_limit(incident.category)


def match_report(
    report: Report, incidents: Iterable[OpenIncident], policy: MergePolicy | None = None
) -> MergeDecision:
    """Which open incident ``report`` belongs to, if any (the report must be located)."""
    policy = policy or MergePolicy()
    if report.lat is None or report.lon is None:
        raise LocationError("locate the report (locate_report) before matching it")
    live = [i for i in incidents if i.status != IncidentStatus.CLOSED]
    if report.source_ref:
        for inc in live:
            if (report.source, report.source_ref) in inc.source_refs:
                return MergeDecision(inc.id, f"same {report.source} report {report.source_ref!r} received again",
                                     duplicate=True)
    best: tuple[float, OpenIncident] | None = None
    radius = policy.radius(report.category)
    for inc in live:
        if inc.category != report.category:
            continue
        if not within_merge_window(report.observed_at, inc, policy):
            continue
        d = distance_m(report.lat, report.lon, inc.lat, inc.lon)
        same_camera = report.camera_id is not None and report.camera_id in inc.camera_ids
        if (d <= radius or same_camera) and (best is None or d < best[0]):
            best = (d, inc)
    if best is None:
        age_h = policy.age_limit(report.category).total_seconds() / 3600
        return MergeDecision(None, f"no open {report.category.value} incident within {radius:.0f} m "
                                   f"and {policy.window.total_seconds() / 60:.0f} min (first report "
                                   f"at most {age_h:g} h before)")
    d, inc = best
    return MergeDecision(inc.id, f"same {report.category.value} {d:.0f} m from incident {inc.id} "
                                 f"(within {radius:.0f} m and {policy.window.total_seconds() / 60:.0f} min)", d)
