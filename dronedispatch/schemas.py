"""Public request/response models: what the API returns and what events carry.

Separate from the table models in :mod:`dronedispatch.store.models`, so the wire format can stay
stable while storage changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dronedispatch.domain.incidents import Category, Severity
from dronedispatch.store.models import Incident, Mission
from dronedispatch.store.repo import as_utc


class LatLon(BaseModel):
    lat: float = Field(ge=-90, le=90, description="Latitude, degrees WGS84.")
    lon: float = Field(ge=-180, le=180, description="Longitude, degrees WGS84.")


class Position(LatLon):
    alt: float | None = Field(default=None, description="Altitude above home (take-off point), metres.")
    vehicle_time_ms: int | None = Field(
        default=None, description="The vehicle's clock when it took this fix (ms since its boot), to order fixes."
    )


class LinkStatus(BaseModel):
    ok: bool = Field(description="Heard from within the configured silence limit.")
    last_heard_s: float | None = Field(description="Seconds since the last message, or null if never heard.")
    loss: float = Field(description="Fraction of packets lost, from sequence gaps.")


class DronePublic(BaseModel):
    id: str
    sysid: int
    dock_id: str
    state: str = Field(description="docked, ready, in_mission, returning, offline, maintenance, …")
    battery: float | None = Field(description="Remaining battery, percent.")
    position: Position | None
    heading: float | None = None
    groundspeed: float | None = None
    mode: str | None = None
    armed: bool = False
    landed: bool = True
    link: LinkStatus
    mission_id: int | None = None
    mission_seq: int | None = Field(default=None, description="Mission item the vehicle is flying to.")
    mission_total: int | None = Field(default=None, description="Items in the mission the vehicle holds.")
    capabilities: list[str] = []
    cruise_speed: float
    held_back: dict[str, Any] | None = Field(
        default=None,
        description="Why a drone that looks ready cannot launch now (its dock, its charge, the weather at its "
        "dock), with when it will be ready where known: a reason's code, params and English/Korean text.",
    )


class CoverageRequest(BaseModel):
    """Keep the scene covered: drones relieve one another (continuous overwatch)."""

    mode: Literal["none", "duration", "until_closed"] = Field(
        description="duration: for duration_s from the first drone on scene; until_closed: until the incident closes"
    )
    duration_s: float | None = Field(default=None, gt=0, le=86_400, description="How long, for mode duration.")


class IncidentCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "category": "fire",
                    "severity": 3,
                    "location": {"lat": 37.3926, "lon": 126.6378},
                    "description": "Smoke over Songdo Central Park",
                }
            ]
        }
    )
    category: Category
    severity: Severity = Severity.MODERATE
    location: LatLon | None = Field(default=None, description="Where it happens; or give camera_id.")
    camera_id: str | None = Field(default=None, description="Fixed camera that saw it; gives the location.")
    description: str = Field(default="", max_length=2000)
    approval_ref: str | None = Field(
        default=None, max_length=128, description="Airspace approval reference, when the place needs one."
    )
    coverage: CoverageRequest | None = Field(
        default=None, description="Keep the scene covered for a duration or until closed (drones relieve each other)."
    )


class IncidentPublic(BaseModel):
    id: int
    category: str
    severity: int
    status: str
    location: LatLon
    camera_id: str | None
    source: str
    description: str
    approval_ref: str | None
    outcome: str | None
    report_count: int
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    district: str | None = None
    outcome_code: str | None = None
    first_on_scene: str | None = None
    split_from_id: int | None = None  # the incident an operator split this one's report out of
    coverage_mode: str = "none"  # none | duration | until_closed (continuous overwatch)
    coverage_until: datetime | None = None
    on_scene_drone_id: str | None = Field(default=None, description="The drone covering the scene now.")

    @classmethod
    def of(cls, i: Incident) -> IncidentPublic:
        assert i.id is not None
        return cls(
            id=i.id,
            category=i.category,
            severity=i.severity,
            status=i.status,
            location=LatLon(lat=i.lat, lon=i.lon),
            camera_id=i.camera_id,
            source=i.source,
            description=i.description,
            approval_ref=i.approval_ref,
            outcome=i.outcome,
            report_count=i.report_count,
            created_at=as_utc(i.created_at),
            updated_at=as_utc(i.updated_at),
            closed_at=as_utc(i.closed_at) if i.closed_at else None,
            district=i.district,
            outcome_code=i.outcome_code,
            first_on_scene=i.first_on_scene,
            split_from_id=i.split_from_id,
            coverage_mode=i.coverage_mode,
            coverage_until=as_utc(i.coverage_until) if i.coverage_until else None,
            on_scene_drone_id=i.on_scene_drone_id,
        )


class DispatchRequest(BaseModel):
    drone_id: str | None = Field(default=None, description="Drone to send; default: the recommended one.")
    template: str | None = Field(default=None, description="Mission template; default: the category's.")
    params: dict[str, Any] = Field(default_factory=dict, description="Template parameters to override.")
    approval_ref: str | None = Field(default=None, max_length=128, description="Airspace approval reference.")
    plan: dict[str, Any] | None = Field(
        default=None,
        description="A QGroundControl .plan (JSON) to fly instead of a template; checked against the airspace.",
    )
    preempt: bool = Field(
        default=False,
        description="Take drone_id off the mission it flies (a person's confirmation of a pre-emption proposal).",
    )


class CloseRequest(BaseModel):
    outcome: str = Field(default="resolved", max_length=500, description="What came of it.")
    outcome_code: Literal["cleared_without_patrol", "escalated", "false_alarm", "other"] | None = Field(
        default=None, description="What came of it, for the statistics."
    )
    first_on_scene: Literal["drone", "patrol", "none"] | None = Field(
        default=None, description="Who reached the scene first: the drone, a patrol, or nobody."
    )


class MissionCommand(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"command": "rtl"}, {"command": "reposition", "lat": 37.3930, "lon": 126.6385}]}
    )
    command: Literal["pause", "resume", "rtl", "land", "abort", "reposition"]
    lat: float | None = Field(default=None, ge=-90, le=90, description="reposition only: latitude to fly to and hold.")
    lon: float | None = Field(
        default=None, ge=-180, le=180, description="reposition only: longitude to fly to and hold."
    )

    @model_validator(mode="after")
    def _reposition_needs_a_point(self) -> MissionCommand:
        if self.command == "reposition" and (self.lat is None or self.lon is None):
            raise ValueError("reposition needs lat and lon")
        return self

    @property
    def position(self) -> tuple[float, float] | None:
        return (self.lat, self.lon) if self.lat is not None and self.lon is not None else None


class MissionItemPublic(BaseModel):
    seq: int
    command: int
    frame: int
    lat: float
    lon: float
    alt: float
    params: list[float | None]


class MissionPublic(BaseModel):
    id: int
    incident_id: int
    drone_id: str
    sysid: int
    state: str
    reason: str | None
    template: str
    params: dict[str, Any]
    items: list[dict[str, Any]]
    on_scene_seq: int
    opaque_id: int | None
    progress: dict[str, int | None] = Field(default_factory=dict, description="seq/total of the vehicle.")
    airspace_check: dict[str, Any] | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    launched_at: datetime | None
    on_scene_at: datetime | None
    ended_at: datetime | None

    @classmethod
    def of(cls, m: Mission, progress: dict[str, int | None] | None = None) -> MissionPublic:
        assert m.id is not None
        return cls(
            id=m.id,
            incident_id=m.incident_id,
            drone_id=m.drone_id,
            sysid=m.sysid,
            state=m.state,
            reason=m.reason,
            template=m.template,
            params=m.params,
            items=m.items,
            on_scene_seq=m.on_scene_seq,
            opaque_id=m.opaque_id,
            progress=progress or {},
            airspace_check=m.airspace_check,
            created_by=m.created_by,
            created_at=as_utc(m.created_at),
            updated_at=as_utc(m.updated_at),
            launched_at=as_utc(m.launched_at) if m.launched_at else None,
            on_scene_at=as_utc(m.on_scene_at) if m.on_scene_at else None,
            ended_at=as_utc(m.ended_at) if m.ended_at else None,
        )


AlertLevel = Literal["info", "warning", "critical"]


class Alert(BaseModel):
    level: AlertLevel
    code: str = Field(description="Stable code the view translates, e.g. link_lost, battery_low.")
    message: str
    drone_id: str | None = None
    mission_id: int | None = None
    at: datetime
