"""The JSON report format: the HTTP webhook body and the generic MQTT JSON topic share it.

``POST /api/v1/ingest/webhook`` (route in api/) reads the raw body and calls
:func:`parse_webhook`; an :class:`IngestError` becomes a 422 with ``as_detail()``. The generic
MQTT topic uses :func:`parse_json_report`, the same parser with ``source="mqtt"``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    ValidationError,
    field_validator,
    model_validator,
)
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from dronedispatch.domain.incidents import Category, Report, Severity

from .base import MAX_SOURCE_REF, IngestError, decode_json_object, from_validation_error

# A report may be timestamped slightly ahead of our clock (sender clock skew), not more.
MAX_CLOCK_SKEW = timedelta(minutes=5)
CAMERA_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"

SEVERITY_NAMES = {s.name.lower(): s for s in Severity}


def _severity(value: Any) -> Any:
    """Accept 1-4 or a CAP name (``minor``, ``Moderate``, ``SEVERE``, ``extreme``)."""
    if isinstance(value, str):
        key = value.strip().lower()
        if key in SEVERITY_NAMES:
            return SEVERITY_NAMES[key]
        if key.isdigit():
            return int(key)
        raise ValueError(f"unknown severity {value!r}; use 1-4 or one of {', '.join(SEVERITY_NAMES)}")
    if isinstance(value, bool):
        raise ValueError("severity must be 1-4 or a name, not a boolean")
    return value


class Location(BaseModel):
    """A WGS84 point."""

    model_config = ConfigDict(extra="forbid")

    lat: StrictFloat = Field(ge=-90, le=90, allow_inf_nan=False, description="Latitude, decimal degrees (WGS84).")
    lon: StrictFloat = Field(ge=-180, le=180, allow_inf_nan=False, description="Longitude, decimal degrees (WGS84).")


Position = Annotated[list[StrictFloat], Field(min_length=2, max_length=3)]  # GeoJSON: [lon, lat(, alt)]
Ring = Annotated[list[Position], Field(min_length=4)]


class PolygonArea(BaseModel):
    """A GeoJSON Polygon: outer ring first, then holes; each ring closed, positions [lon, lat]."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["Polygon"]
    coordinates: list[Ring] = Field(min_length=1)


class MultiPolygonArea(BaseModel):
    """A GeoJSON MultiPolygon: several polygons, positions [lon, lat]."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["MultiPolygon"]
    coordinates: list[Annotated[list[Ring], Field(min_length=1)]] = Field(min_length=1)


def _rings(area: PolygonArea | MultiPolygonArea) -> list[list[list[Position]]]:
    return [area.coordinates] if isinstance(area, PolygonArea) else area.coordinates


def _check_area(area: PolygonArea | MultiPolygonArea) -> BaseGeometry:
    """Closed rings, WGS84 ranges and a valid, non-empty shape; returns the shapely geometry."""
    for polygon in _rings(area):
        for ring in polygon:
            if ring[0] != ring[-1]:
                raise ValueError("each ring must be closed (first position equal to the last)")
            for lon, lat, *_ in ring:
                if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                    raise ValueError(f"position [{lon}, {lat}] is outside WGS84 ranges (positions are [lon, lat])")
    geometry = shape(area.model_dump())
    if geometry.is_empty or not geometry.is_valid or geometry.area == 0:
        raise ValueError("the area is degenerate or self-intersecting")
    return geometry


class WebhookPayload(BaseModel):
    """An incident report from an outside system (CAD, alarm panel, sensor gateway, VMS rule)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "category": "fire",
                    "severity": "severe",
                    "location": {"lat": 37.3926, "lon": 126.6378},
                    "description": "Smoke seen over Songdo Central Park",
                    "source_ref": "cad-2026-000123",
                    "observed_at": "2026-11-25T06:30:00+09:00",
                },
                {
                    "category": "traffic_accident",
                    "severity": 3,
                    "camera_id": "songdo-cctv-017",
                    "description": "Two cars collided at the crossing",
                },
                {
                    "category": "flood",
                    "severity": "moderate",
                    "area": {
                        "type": "Polygon",
                        "coordinates": [
                            [
                                [126.630, 37.530],
                                [126.650, 37.530],
                                [126.650, 37.540],
                                [126.630, 37.540],
                                [126.630, 37.530],
                            ]
                        ],
                    },
                    "description": "Canal above the warning mark",
                },
            ]
        },
    )

    category: Category = Field(description="What happened: " + ", ".join(c.value for c in Category) + ".")
    severity: Annotated[Severity, BeforeValidator(_severity)] = Field(
        default=Severity.MODERATE,
        description="1 minor, 2 moderate, 3 severe, 4 extreme (numbers or CAP names).",
    )
    location: Location | None = Field(
        default=None, description="Where it happened. Required unless camera_id or area is given."
    )
    area: Annotated[PolygonArea | MultiPolygonArea, Field(discriminator="type")] | None = Field(
        default=None,
        description="GeoJSON Polygon or MultiPolygon ([lon, lat] positions) when the incident covers an area; "
        "without a location, its centre is used as the point.",
    )
    camera_id: str | None = Field(
        default=None,
        description="Fixed camera or sensor that raised it; its registered position is used when location is absent.",
    )
    description: str = Field(default="", max_length=2000, description="Free text shown to the operator.")
    source_ref: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SOURCE_REF,
        description="The sender's own id for this report (for dedup).",
    )
    observed_at: datetime | None = Field(
        default=None,
        description="When it was observed, ISO 8601 with a UTC offset; defaults to the time of receipt.",
    )

    @field_validator("camera_id", mode="before")
    @classmethod
    def _camera_id_format(cls, value: Any) -> Any:
        if isinstance(value, str) and not re.fullmatch(CAMERA_ID_PATTERN, value.strip()):
            raise ValueError(
                f"camera ids are 1-64 letters, digits or _ . : - starting with a letter or digit; got {value[:80]!r}"
            )
        return value

    @field_validator("observed_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a UTC offset (e.g. 2026-11-25T06:30:00+09:00 or 2026-11-24T21:30:00Z)")
        return value

    @field_validator("area")
    @classmethod
    def _valid_area(cls, value: PolygonArea | MultiPolygonArea | None) -> PolygonArea | MultiPolygonArea | None:
        if value is not None:
            _check_area(value)
        return value

    @model_validator(mode="after")
    def _needs_a_place(self) -> WebhookPayload:
        if self.location is None and self.camera_id is None and self.area is None:
            raise ValueError("give a location {lat, lon}, an area or a camera_id")
        return self


def parse_webhook(payload: bytes | str | dict, now: datetime, *, source: str = "webhook") -> Report:
    """A JSON body (bytes or already decoded) → Report, or :class:`IngestError` naming each bad field."""
    data = decode_json_object(source, payload)
    try:
        body = WebhookPayload.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(source, exc) from None
    observed = body.observed_at or now
    if observed > now + MAX_CLOCK_SKEW:
        raise IngestError.at(source, "observed_at", f"{observed.isoformat()} is in the future (now {now.isoformat()})")
    lat, lon = (body.location.lat, body.location.lon) if body.location else (None, None)
    area = body.area.model_dump() if body.area else None
    if body.area is not None and body.location is None:
        geometry = _check_area(body.area)
        centre = geometry.centroid if geometry.contains(geometry.centroid) else geometry.representative_point()
        lat, lon = round(centre.y, 7), round(centre.x, 7)
    return Report(
        source=source,
        source_ref=body.source_ref,
        category=body.category,
        severity=body.severity,
        lat=lat,
        lon=lon,
        area=area,
        camera_id=body.camera_id,
        observed_at=observed,
        description=body.description,
        raw=data,
    )


def parse_json_report(payload: bytes, now: datetime) -> Report:
    """Adapter for the generic MQTT JSON topic: the webhook format, tagged ``source="mqtt"``."""
    return parse_webhook(payload, now, source="mqtt")
