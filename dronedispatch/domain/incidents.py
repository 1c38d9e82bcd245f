"""Incidents and the reports that form them (fields after FIWARE's Alert model and CAP 1.2)."""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum, StrEnum

from pydantic import BaseModel, Field


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
