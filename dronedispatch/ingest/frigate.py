"""Frigate NVR messages → reports.

Frigate publishes JSON on two topics (``topic_prefix`` defaults to ``frigate``):

- ``frigate/reviews``: one review item per activity on a camera, ``{"type": "new"|"update"|"end",
  "before": {...}, "after": {"id", "camera", "start_time", "end_time", "severity":
  "alert"|"detection", "data": {"objects", "zones", "audio", "sub_labels", "detections"}}}``.
- ``frigate/events``: one tracked object, ``{"type", "before", "after": {"id", "camera", "label",
  "sub_label", "top_score", "false_positive", "start_time", "current_zones", "entered_zones",
  "stationary", ...}}``. Audio detections arrive here too, labelled with the sound.

Frigate knows cameras, not places: a report carries ``camera_id`` = the Frigate camera name and
the service takes its position from the camera registry.

Mapping (first rule that matches wins; zone rules match on zone *names*, so a city names its
Frigate zones accordingly, e.g. ``restricted_depot`` or ``river_bank``):

1. fire: a ``fire`` or ``smoke`` object, or a ``fire_alarm`` / ``smoke_detector`` sound.
2. traffic_accident: a vehicle (car, truck, bus, motorcycle, bicycle) and a person in the same
   *alert* review (Frigate raises alerts only for what its config marks as noteworthy), or a
   vehicle in a zone named like a road in an alert.
3. crime: a person in a restricted zone (name contains restricted, no_entry, prohibited,
   perimeter), or a scream, yell, breaking glass or gunshot.
4. missing_person: a person in a water zone (name contains river, water, canal, lake, sea).
5. other: any remaining *alert* review (not plain detections or tracked objects).
Otherwise the message is ignored (``None``).

Severity: the category's base (fire, traffic accident and missing person severe; crime moderate;
other minor), one step lower for a review that is only a ``detection``.

An ``update`` yields a report only when it changes the outcome: a new category, or a higher
severity than ``before`` had (e.g. a detection that became an alert, a person who walked into a
restricted zone). ``end`` and ``genai`` messages and false positives are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, ValidationError, field_validator

from dronedispatch.domain.incidents import Category, Report, Severity

from .base import Adapter, IngestError, bounded_ref, decode_json_object, epoch_to_datetime, from_validation_error

SOURCE = "frigate"
# review messages that only annotate an item (Frigate 0.16+ GenAI summaries): nothing to dispatch
INFO_ONLY_TYPES = frozenset({"genai"})
MAX_DESCRIPTION = 2000
CAMERA_NAME_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"  # Frigate's own rule for camera names (plus a length bound)


class FrigateRules(BaseModel):
    """How Frigate labels and zone names map to incident categories (a city may override any list)."""

    fire_labels: frozenset[str] = Field(
        default=frozenset({"fire", "smoke", "fire_alarm", "smoke_detector", "smoke_alarm"}),
        description="Object or audio labels that mean fire.",
    )
    vehicle_labels: frozenset[str] = Field(
        default=frozenset({"car", "truck", "bus", "motorcycle", "bicycle"}), description="Road vehicle labels."
    )
    person_labels: frozenset[str] = Field(default=frozenset({"person"}), description="Labels for people.")
    distress_labels: frozenset[str] = Field(
        default=frozenset({"scream", "yell", "glass", "breaking", "gunshot", "shatter"}),
        description="Audio labels that suggest a crime in progress.",
    )
    restricted_zone_markers: tuple[str, ...] = Field(
        default=("restricted", "no_entry", "prohibited", "perimeter"),
        description="A zone whose name contains one of these is restricted.",
    )
    road_zone_markers: tuple[str, ...] = Field(
        default=("road", "crossing", "intersection", "junction", "lane"),
        description="A zone whose name contains one of these is a roadway.",
    )
    water_zone_markers: tuple[str, ...] = Field(
        default=("river", "water", "canal", "lake", "sea", "harbour", "harbor"),
        description="A zone whose name contains one of these is open water or its bank.",
    )
    alerts_as_other: bool = Field(default=True, description="Report alerts that match no rule as category other.")
    min_score: float = Field(default=0.0, ge=0, le=1, description="Ignore tracked objects whose top_score is lower.")


BASE_SEVERITY = {
    Category.FIRE: Severity.SEVERE,
    Category.TRAFFIC_ACCIDENT: Severity.SEVERE,
    Category.MISSING_PERSON: Severity.SEVERE,
    Category.CRIME: Severity.MODERATE,
    Category.OTHER: Severity.MINOR,
}

Outcome = tuple[Category, Severity, str]  # category, severity, why (shown to the operator)


def _zones_matching(zones: Iterable[str], markers: Iterable[str]) -> list[str]:
    return [z for z in zones if any(m in z.lower() for m in markers)]


def classify(labels: set[str], zones: set[str], alert: bool | None, rules: FrigateRules) -> Outcome | None:
    """Pure mapping of what Frigate saw to (category, severity, reason); ``alert`` is None for tracked objects."""
    # Frigate marks recognised objects "person-verified" (face or plate known): still a person
    labels = {label.lower().removesuffix("-verified") for label in labels}
    outcome: tuple[Category, str] | None = None
    people = labels & rules.person_labels
    vehicles = labels & rules.vehicle_labels
    if fire := sorted(labels & rules.fire_labels):
        outcome = Category.FIRE, f"{', '.join(fire)} detected"
    elif alert and vehicles and people:
        outcome = Category.TRAFFIC_ACCIDENT, f"{', '.join(sorted(vehicles))} and a person in one alert"
    elif alert and vehicles and (roads := _zones_matching(zones, rules.road_zone_markers)):
        outcome = Category.TRAFFIC_ACCIDENT, f"{', '.join(sorted(vehicles))} alert on {', '.join(sorted(roads))}"
    elif people and (restricted := _zones_matching(zones, rules.restricted_zone_markers)):
        outcome = Category.CRIME, f"person in restricted zone {', '.join(sorted(restricted))}"
    elif distress := sorted(labels & rules.distress_labels):
        outcome = Category.CRIME, f"sound of {', '.join(distress)}"
    elif people and (water := _zones_matching(zones, rules.water_zone_markers)):
        outcome = Category.MISSING_PERSON, f"person in water zone {', '.join(sorted(water))}"
    elif alert and rules.alerts_as_other:
        outcome = Category.OTHER, f"Frigate alert: {', '.join(sorted(labels)) or 'no objects'}"
    if outcome is None:
        return None
    category, why = outcome
    severity = BASE_SEVERITY[category]
    if alert is False:  # a review that is only a detection
        severity = Severity(max(Severity.MINOR, severity - 1))
    return category, severity, why


def _is_news(before: Outcome | None, after: Outcome | None) -> bool:
    if after is None:
        return False
    if before is None:
        return True
    return after[0] != before[0] or after[1] > before[1]


# ---- message models: only the fields used are declared; Frigate's other fields pass through


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Camera(_Lenient):
    id: str = Field(min_length=1, max_length=100)  # Frigate's are ~25 characters
    camera: str
    start_time: StrictFloat = Field(allow_inf_nan=False)

    @field_validator("camera")
    @classmethod
    def _camera_name(cls, value: str) -> str:
        if not re.fullmatch(CAMERA_NAME_PATTERN, value):
            raise ValueError(f"not a Frigate camera name (letters, digits, _ or -, at most 64): {value[:80]!r}")
        return value


class ReviewData(_Lenient):
    objects: list[str] = Field(default_factory=list)
    zones: list[str] = Field(default_factory=list)
    audio: list[str] = Field(default_factory=list)
    sub_labels: list[Any] = Field(default_factory=list)


class ReviewItem(_Camera):
    severity: Literal["alert", "detection"]
    data: ReviewData = Field(default_factory=ReviewData)


class ReviewMessage(_Lenient):
    type: Literal["new", "update", "end"]
    before: ReviewItem | None = None
    after: ReviewItem


class TrackedObject(_Camera):
    label: str = Field(min_length=1, max_length=100)
    sub_label: Any = None
    top_score: StrictFloat | None = Field(default=None, allow_inf_nan=False)
    false_positive: bool = False
    current_zones: list[str] = Field(default_factory=list)
    entered_zones: list[str] = Field(default_factory=list)


class EventMessage(_Lenient):
    type: Literal["new", "update", "end"]
    before: TrackedObject | None = None
    after: TrackedObject


M = TypeVar("M", bound=BaseModel)


def _load(model: type[M], payload: bytes | str | dict) -> tuple[M | None, dict]:
    data = decode_json_object(SOURCE, payload)
    if isinstance(data.get("type"), str) and data["type"] in INFO_ONLY_TYPES:
        return None, data
    try:
        return model.model_validate(data), data
    except ValidationError as exc:
        raise from_validation_error(SOURCE, exc) from None


def _review_outcome(item: ReviewItem, rules: FrigateRules) -> Outcome | None:
    labels = set(item.data.objects) | set(item.data.audio)
    return classify(labels, set(item.data.zones), item.severity == "alert", rules)


def _event_outcome(obj: TrackedObject, rules: FrigateRules) -> Outcome | None:
    if obj.false_positive or (obj.top_score is not None and obj.top_score < rules.min_score):
        return None
    return classify({obj.label}, set(obj.current_zones) | set(obj.entered_zones), None, rules)


def parse_review(payload: bytes | str | dict, now: datetime, rules: FrigateRules | None = None) -> Report | None:
    """A ``frigate/reviews`` message → Report, or None when it adds nothing; IngestError when malformed."""
    rules = rules or FrigateRules()
    msg, raw = _load(ReviewMessage, payload)
    if msg is None or msg.type == "end":
        return None
    after = _review_outcome(msg.after, rules)
    before = _review_outcome(msg.before, rules) if msg.type == "update" and msg.before else None
    if not _is_news(before, after):
        return None
    assert after is not None
    item = msg.after
    where = f" in {', '.join(item.data.zones)}" if item.data.zones else ""
    names = [str(s[0] if isinstance(s, list) and s else s) for s in item.data.sub_labels]
    who = f" ({', '.join(names)})" if names else ""
    return Report(
        source=SOURCE,
        source_ref=bounded_ref(f"frigate:review:{item.id}"),
        category=after[0],
        severity=after[1],
        camera_id=item.camera,
        observed_at=epoch_to_datetime(SOURCE, "after.start_time", item.start_time),
        description=f"Frigate {item.severity} on {item.camera}{where}: {after[2]}{who}"[:MAX_DESCRIPTION],
        raw=raw,
    )


def parse_event(payload: bytes | str | dict, now: datetime, rules: FrigateRules | None = None) -> Report | None:
    """A ``frigate/events`` message → Report, or None when it adds nothing; IngestError when malformed."""
    rules = rules or FrigateRules()
    msg, raw = _load(EventMessage, payload)
    if msg is None or msg.type == "end":
        return None
    after = _event_outcome(msg.after, rules)
    before = _event_outcome(msg.before, rules) if msg.type == "update" and msg.before else None
    if not _is_news(before, after):
        return None
    assert after is not None
    obj = msg.after
    zones = obj.current_zones or obj.entered_zones
    where = f" in {', '.join(zones)}" if zones else ""
    score = f" (score {obj.top_score:.2f})" if obj.top_score is not None else ""
    return Report(
        source=SOURCE,
        source_ref=bounded_ref(f"frigate:event:{obj.id}"),
        category=after[0],
        severity=after[1],
        camera_id=obj.camera,
        observed_at=epoch_to_datetime(SOURCE, "after.start_time", obj.start_time),
        description=f"Frigate {obj.label} on {obj.camera}{where}: {after[2]}{score}"[:MAX_DESCRIPTION],
        raw=raw,
    )


class FrigateAdapter:
    """Both Frigate topics with one rule set; ``topics()`` gives the MqttIngest topic map."""

    def __init__(self, rules: FrigateRules | None = None) -> None:
        self.rules = rules or FrigateRules()

    def review(self, payload: bytes, now: datetime) -> Report | None:
        return parse_review(payload, now, self.rules)

    def event(self, payload: bytes, now: datetime) -> Report | None:
        return parse_event(payload, now, self.rules)

    def topics(self, prefix: str = "frigate") -> dict[str, Adapter]:
        return {f"{prefix}/reviews": self.review, f"{prefix}/events": self.event}


__all__ = [
    "FrigateAdapter",
    "FrigateRules",
    "IngestError",
    "classify",
    "parse_event",
    "parse_review",
]
