"""Frigate review and tracked-object messages → reports, and the category mapping."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dronedispatch.domain.incidents import Category, Severity
from dronedispatch.ingest import FrigateAdapter, FrigateRules, IngestError, parse_event, parse_review
from dronedispatch.ingest.frigate import classify

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 11, 25, 6, 31, tzinfo=UTC)
RULES = FrigateRules()


def load(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


def review(kind: str = "new", severity: str = "alert", objects=("person",), zones=(), audio=(), before=None) -> dict:
    item = {
        "id": "1764052400.1-abc123",
        "camera": "songdo_cam_3",
        "start_time": 1764052400.1,
        "end_time": None,
        "severity": severity,
        "thumb_path": "/media/x.webp",
        "data": {
            "detections": ["e1"],
            "objects": list(objects),
            "sub_labels": [],
            "zones": list(zones),
            "audio": list(audio),
        },
    }
    return {"type": kind, "before": before or copy.deepcopy(item), "after": item}


def event(kind: str = "new", label: str = "person", zones=(), before=None, **extra: Any) -> dict:
    obj = {
        "id": "1764052500.2-def456",
        "camera": "cheongna_gate",
        "label": label,
        "sub_label": None,
        "top_score": 0.9,
        "false_positive": False,
        "start_time": 1764052500.2,
        "end_time": None,
        "current_zones": list(zones),
        "entered_zones": list(zones),
        **extra,
    }
    return {"type": kind, "before": before or copy.deepcopy(obj), "after": obj}


def test_recorded_smoke_alert_is_a_fire() -> None:
    report = parse_review(json.dumps(load("frigate_review_new_alert.json")).encode(), NOW)
    assert report is not None
    assert report.source == "frigate"
    assert report.category is Category.FIRE
    assert report.severity is Severity.SEVERE
    assert report.camera_id == "songdo_park_east"
    assert report.lat is None and report.lon is None  # the camera registry places it
    assert report.source_ref == "frigate:review:1764052200.412331-k3p9qa"
    assert report.observed_at == datetime.fromtimestamp(1764052200.412331, tz=UTC)
    assert "smoke" in report.description
    assert report.raw == load("frigate_review_new_alert.json")


def test_recorded_event_update_into_restricted_zone_is_a_crime() -> None:
    report = parse_event(json.dumps(load("frigate_event_update.json")).encode(), NOW)
    assert report is not None
    assert report.category is Category.CRIME
    assert report.camera_id == "cheongna_depot_gate"
    assert "restricted_yard" in report.description
    assert report.source_ref == "frigate:event:1764052310.100200-zz81pq"


@pytest.mark.parametrize(
    ("labels", "zones", "alert", "expected"),
    [
        ({"fire"}, set(), None, (Category.FIRE, Severity.SEVERE)),
        ({"smoke", "person"}, set(), True, (Category.FIRE, Severity.SEVERE)),
        ({"smoke"}, set(), False, (Category.FIRE, Severity.MODERATE)),
        ({"smoke_detector"}, set(), None, (Category.FIRE, Severity.SEVERE)),
        ({"car", "person"}, set(), True, (Category.TRAFFIC_ACCIDENT, Severity.SEVERE)),
        ({"car", "person"}, set(), False, None),  # a detection of both is just a street
        ({"truck"}, {"main_road"}, True, (Category.TRAFFIC_ACCIDENT, Severity.SEVERE)),
        ({"car"}, {"driveway"}, True, (Category.OTHER, Severity.MINOR)),
        ({"person"}, {"restricted_depot"}, None, (Category.CRIME, Severity.MODERATE)),
        ({"person"}, {"Perimeter_North"}, False, (Category.CRIME, Severity.MINOR)),
        ({"scream"}, set(), None, (Category.CRIME, Severity.MODERATE)),
        ({"person"}, {"river_bank"}, None, (Category.MISSING_PERSON, Severity.SEVERE)),
        ({"person"}, {"yard"}, None, None),
        ({"person"}, {"yard"}, True, (Category.OTHER, Severity.MINOR)),
        ({"dog"}, set(), False, None),
        ({"PERSON"}, {"restricted"}, None, (Category.CRIME, Severity.MODERATE)),
        ({"person-verified", "car"}, set(), True, (Category.TRAFFIC_ACCIDENT, Severity.SEVERE)),
    ],
)
def test_mapping(labels: set[str], zones: set[str], alert: bool | None, expected: tuple | None) -> None:
    outcome = classify(labels, zones, alert, RULES)
    assert (outcome[:2] if outcome else None) == expected


def test_rules_are_configurable() -> None:
    rules = FrigateRules(restricted_zone_markers=("bunker",), alerts_as_other=False)
    assert classify({"person"}, {"bunker_2"}, None, rules)[0] is Category.CRIME
    assert classify({"person"}, {"restricted"}, True, rules) is None


def test_update_that_adds_nothing_is_ignored() -> None:
    msg = review("update", objects=["smoke"])
    msg["after"]["data"]["detections"].append("e2")  # another object id, same picture
    assert parse_review(msg, NOW) is None
    ev = event("update", zones=["restricted_yard"])
    ev["after"]["top_score"] = 0.95  # a better snapshot
    assert parse_event(ev, NOW) is None


def test_update_that_escalates_is_reported() -> None:
    before = review(severity="detection", objects=["person"])["after"]
    msg = review("update", severity="alert", objects=["person", "car"], before=before)
    report = parse_review(msg, NOW)
    assert report is not None and report.category is Category.TRAFFIC_ACCIDENT
    # detection → alert for the same fire raises its severity
    before = review(severity="detection", objects=["smoke"])["after"]
    report = parse_review(review("update", severity="alert", objects=["smoke"], before=before), NOW)
    assert report is not None and report.severity is Severity.SEVERE


def test_end_false_positive_and_low_score_are_ignored() -> None:
    assert parse_review(review("end", objects=["fire"]), NOW) is None
    assert parse_event(event("end", label="fire"), NOW) is None
    assert parse_event(event(label="fire", false_positive=True), NOW) is None
    low = event(label="fire", top_score=0.4)
    assert parse_event(low, NOW, FrigateRules(min_score=0.6)) is None
    assert parse_event(low, NOW) is not None


def test_genai_annotations_are_ignored() -> None:
    assert parse_review(b'{"type": "genai", "after": {"id": "x", "data": {"metadata": {}}}}', NOW) is None


def test_new_message_without_before_is_fine() -> None:
    msg = review(objects=["fire"])
    del msg["before"]
    assert parse_review(msg, NOW) is not None


def test_adapter_maps_both_topics() -> None:
    adapter = FrigateAdapter()
    topics = adapter.topics("city1")
    assert set(topics) == {"city1/reviews", "city1/events"}
    assert topics["city1/reviews"](json.dumps(review(objects=["fire"])).encode(), NOW) is not None
    assert topics["city1/events"](json.dumps(event(label="fire")).encode(), NOW) is not None


def broken(path: str, value: Any, base: dict | None = None) -> dict:
    msg = copy.deepcopy(base or review())
    node = msg
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[key]
    if value is KeyError:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return msg


@pytest.mark.parametrize(
    ("payload", "path", "reason"),
    [
        (b"not json", "$", "invalid JSON"),
        (b"\x00\x01\x02", "$", "invalid JSON"),
        (b"[]", "$", "expected a JSON object"),
        (b"{" + b'"a":' * 0 + b"}", "type", "Field required"),
        (b"x" * 300_000, "$", "limit is"),
        (broken("type", "started"), "type", "Input should be 'new', 'update' or 'end'"),
        (broken("after", KeyError), "after", "Field required"),
        (broken("after", "gone"), "after", "valid dictionary"),
        (broken("after.camera", KeyError), "after.camera", "Field required"),
        (broken("after.camera", "front door/../x"), "after.camera", "not a Frigate camera name"),
        (broken("after.camera", ["cam"]), "after.camera", "valid string"),
        (broken("after.camera", "c" * 65), "after.camera", "not a Frigate camera name"),
        (broken("after.severity", "panic"), "after.severity", "'alert' or 'detection'"),
        (broken("after.start_time", "yesterday"), "after.start_time", "valid number"),
        (broken("after.start_time", True), "after.start_time", "valid number"),
        (broken("after.data.objects", "person"), "after.data.objects", "valid list"),
        (broken("after.data.zones", [1, 2]), "after.data.zones[0]", "valid string"),
        (broken("before.severity", 3), "before.severity", "'alert' or 'detection'"),
        (broken("after.data.zones", ["yard\u0000"]), "after.data.zones[0]", "NUL character"),
        (broken("after.id", "i" * 101), "after.id", "at most 100"),
    ],
)
def test_bad_reviews_say_where_and_why(payload: Any, path: str, reason: str) -> None:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    with pytest.raises(IngestError) as info:
        parse_review(data, NOW)
    found = {p.path: p.reason for p in info.value.problems}
    assert path in found, found
    assert reason in found[path], found


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("after.label", KeyError, "Field required"),
        ("after.label", 5, "valid string"),
        ("after.top_score", "high", "valid number"),
        ("after.current_zones", {"a": 1}, "valid list"),
        ("after.false_positive", "maybe", "valid boolean"),
    ],
)
def test_bad_events_say_where_and_why(path: str, value: Any, reason: str) -> None:
    with pytest.raises(IngestError) as info:
        parse_event(json.dumps(broken(path, value, event())).encode(), NOW)
    found = {p.path: p.reason for p in info.value.problems}
    assert reason in found[path], found


def test_huge_start_time_is_rejected_not_crashing() -> None:
    with pytest.raises(IngestError, match=r"after\.start_time"):
        parse_review(broken("after.start_time", 1e300, review(objects=["fire"])), NOW)


def test_description_stays_bounded() -> None:
    report = parse_review(review(objects=["fire"], zones=[f"zone_{i}" for i in range(5000)]), NOW)
    assert report is not None and len(report.description) <= 2000
