"""Incidents as their sources would send them: webhook JSON, Frigate reviews, JSON on MQTT, CAP XML.

Pure builders: a timeline entry in, (topic or route, body, source_ref) out. The runner sends
them over the real path (HTTP into the app, MQTT through a real broker), so the adapters under
test see exactly what a camera, a CAD system or a warning feed would give them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from dronedispatch.domain.incidents import Category
from dronedispatch.scenario.model import IncidentEntry

REPORTS_TOPIC = "dronedispatch/reports"
CAP_TOPIC = "dronedispatch/cap"
FRIGATE_REVIEWS = "frigate/reviews"
ERROR_TOPIC = "dronedispatch/ingest-errors"

FRIGATE_LABELS: dict[Category, list[str]] = {
    Category.FIRE: ["smoke", "fire"],
    Category.TRAFFIC_ACCIDENT: ["car", "person"],
    Category.CRIME: ["person", "scream"],
    Category.MISSING_PERSON: ["person"],
}
CAP_CATEGORY: dict[Category, str] = {
    Category.FIRE: "Fire",
    Category.TRAFFIC_ACCIDENT: "Transport",
    Category.CRIME: "Security",
    Category.MISSING_PERSON: "Rescue",
    Category.FLOOD: "Met",
    Category.ENVIRONMENT: "Env",
    Category.FACILITY: "Infra",
    Category.OTHER: "Other",
}
CAP_SEVERITY = {1: "Minor", 2: "Moderate", 3: "Severe", 4: "Extreme"}
CAP_RADIUS_KM = 0.05


@dataclass(frozen=True)
class Outgoing:
    """One message to send: an HTTP route or an MQTT topic, a body, and the report id to look for."""

    via: str
    target: str  # route path or MQTT topic
    body: bytes
    source_ref: str | None
    json_body: dict[str, Any] | None = None


def _ref(scenario: str, entry: IncidentEntry) -> str:
    return f"scenario:{scenario}:{entry.id}"


def _json_report(scenario: str, entry: IncidentEntry) -> dict[str, Any]:
    body: dict[str, Any] = {
        "category": entry.category.value,
        "severity": entry.severity,
        "description": entry.description or f"scenario {scenario}: {entry.id}",
        "source_ref": _ref(scenario, entry),
    }
    if entry.location is not None:
        body["location"] = {"lat": entry.location.lat, "lon": entry.location.lon}
    if entry.camera is not None:
        body["camera_id"] = entry.camera
    return body


def webhook(scenario: str, entry: IncidentEntry) -> Outgoing:
    body = entry.payload if entry.payload is not None else _json_report(scenario, entry)
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    ref = body.get("source_ref") if isinstance(body, dict) else None
    return Outgoing("webhook", "/api/v1/ingest/webhook", raw, ref)


def operator(scenario: str, entry: IncidentEntry) -> Outgoing:
    body: dict[str, Any] = {
        "category": entry.category.value,
        "severity": entry.severity,
        "description": entry.description or f"scenario {scenario}: {entry.id}",
    }
    if entry.location is not None:
        body["location"] = {"lat": entry.location.lat, "lon": entry.location.lon}
    if entry.camera is not None:
        body["camera_id"] = entry.camera
    if entry.approval_ref is not None:
        body["approval_ref"] = entry.approval_ref
    if isinstance(entry.payload, dict):
        body = entry.payload
    return Outgoing("operator", "/api/v1/incidents", json.dumps(body).encode(), None, body)


def mqtt_json(scenario: str, entry: IncidentEntry) -> Outgoing:
    out = webhook(scenario, entry)
    return Outgoing("mqtt", f"{REPORTS_TOPIC}/{entry.id}", out.body, out.source_ref)


def frigate_review(scenario: str, entry: IncidentEntry, now: datetime) -> Outgoing:
    if entry.payload is not None:
        raw = entry.payload.encode() if isinstance(entry.payload, str) else json.dumps(entry.payload).encode()
        return Outgoing("frigate", FRIGATE_REVIEWS, raw, None)
    review_id = f"{now.timestamp():.6f}-{scenario}-{entry.id}"[:200]
    objects = entry.frigate_objects or FRIGATE_LABELS.get(entry.category, ["person"])
    body = {
        "type": "new",
        "before": None,
        "after": {
            "id": review_id,
            "camera": entry.camera,
            "start_time": now.timestamp(),
            "end_time": None,
            "severity": "alert",
            "data": {"objects": objects, "zones": [], "audio": [], "sub_labels": [], "detections": []},
        },
    }
    return Outgoing("frigate", FRIGATE_REVIEWS, json.dumps(body).encode(), f"frigate:review:{review_id}")


def cap_alert(scenario: str, entry: IncidentEntry, now: datetime) -> Outgoing:
    topic = f"{CAP_TOPIC}/{entry.id}"
    if entry.payload is not None:
        raw = entry.payload if isinstance(entry.payload, str) else json.dumps(entry.payload)
        return Outgoing("cap", topic, raw.encode(), None)
    if entry.location is None:
        raise ValueError(f"{entry.id}: a CAP alert needs a location")
    sender = f"scenario@{scenario}"
    identifier = _ref(scenario, entry)
    event = entry.description or f"{entry.category.value} ({entry.id})"
    if entry.category is Category.FLOOD:
        event = f"flood: {event}"
    sent = now.astimezone(UTC).replace(microsecond=0).isoformat()
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{escape(identifier)}</identifier>
  <sender>{escape(sender)}</sender>
  <sent>{sent}</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Public</scope>
  <info>
    <language>en-US</language>
    <category>{CAP_CATEGORY[entry.category]}</category>
    <event>{escape(event)}</event>
    <urgency>Immediate</urgency>
    <severity>{CAP_SEVERITY[entry.severity]}</severity>
    <certainty>Observed</certainty>
    <headline>{escape(event)}</headline>
    <area>
      <areaDesc>{escape(entry.id)}</areaDesc>
      <circle>{entry.location.lat:.6f},{entry.location.lon:.6f} {CAP_RADIUS_KM}</circle>
    </area>
  </info>
</alert>
"""
    return Outgoing("cap", topic, xml.encode(), f"cap:{sender}:{identifier}")


def build(scenario: str, entry: IncidentEntry, now: datetime) -> Outgoing:
    if entry.via == "webhook":
        return webhook(scenario, entry)
    if entry.via == "operator":
        return operator(scenario, entry)
    if entry.via == "mqtt":
        return mqtt_json(scenario, entry)
    if entry.via == "frigate":
        return frigate_review(scenario, entry, now)
    return cap_alert(scenario, entry, now)
