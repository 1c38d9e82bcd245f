"""The JSON report format (webhook and generic MQTT topic): valid input and every kind of bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from dronedispatch.domain.incidents import Category, Severity
from dronedispatch.ingest import IngestError, WebhookPayload, parse_json_report, parse_webhook

NOW = datetime(2026, 11, 25, 6, 30, tzinfo=UTC)
PARK = {"lat": 37.3926, "lon": 126.6378}


def body(**fields: object) -> bytes:
    return json.dumps({"category": "fire", "location": PARK, **fields}).encode()


def problems(payload: bytes | str | dict) -> dict[str, str]:
    with pytest.raises(IngestError) as info:
        parse_webhook(payload, NOW)
    return {p.path: p.reason for p in info.value.problems}


def test_full_payload_becomes_report() -> None:
    report = parse_webhook(
        body(severity="severe", description="smoke", source_ref="cad-1", observed_at="2026-11-25T15:20:00+09:00"),
        NOW,
    )
    assert report.source == "webhook"
    assert report.category is Category.FIRE
    assert report.severity is Severity.SEVERE
    assert (report.lat, report.lon) == (PARK["lat"], PARK["lon"])
    assert report.source_ref == "cad-1"
    assert report.observed_at == datetime(2026, 11, 25, 6, 20, tzinfo=UTC)
    assert report.raw == json.loads(
        body(severity="severe", description="smoke", source_ref="cad-1", observed_at="2026-11-25T15:20:00+09:00")
    )


def test_minimal_payload_defaults() -> None:
    report = parse_webhook({"category": "crime", "camera_id": "songdo-cctv-017"}, NOW)
    assert report.severity is Severity.MODERATE
    assert report.observed_at == NOW
    assert report.camera_id == "songdo-cctv-017"
    assert report.lat is None and report.lon is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [(1, Severity.MINOR), ("4", Severity.EXTREME), ("Extreme", Severity.EXTREME), (" minor ", Severity.MINOR)],
)
def test_severity_numbers_and_names(given: object, expected: Severity) -> None:
    assert parse_webhook(body(severity=given), NOW).severity is expected


def test_generic_topic_is_tagged_mqtt() -> None:
    assert parse_json_report(body(), NOW).source == "mqtt"


def test_schema_has_descriptions_and_examples() -> None:
    schema = WebhookPayload.model_json_schema()
    assert schema["examples"]
    for name, prop in schema["properties"].items():
        assert prop.get("description"), name
    for example in schema["examples"]:
        parse_webhook(example, NOW)


@pytest.mark.parametrize(
    ("payload", "path", "reason"),
    [
        (b"{", "$", "invalid JSON at line 1"),
        (b"", "$", "empty"),
        (b"\xff\xfe", "$", "not UTF-8"),
        (b"[1, 2]", "$", "expected a JSON object, got list"),
        (b'"fire"', "$", "expected a JSON object, got str"),
        (b'{"category": "fire", "location": {"lat": NaN, "lon": 1}}', "$", "NaN is not valid JSON"),
        (b"[" * 50_000 + b"]" * 50_000, "$", "nested deeper"),
        ('{"category": "fire", "camera_id": "c", "x": ' + "[" * 40 + "]" * 40 + "}", "$", "nested deeper"),
        (b" " * 300_000, "$", "limit is"),
        (body(description="x" * 300_000), "$", "limit is"),
        (body(category="explosion"), "category", "Input should be 'fire'"),
        (body(category=3), "category", "Input should be"),
        (body(severity=7), "severity", "Input should be 1, 2, 3 or 4"),
        (body(severity="urgent"), "severity", "unknown severity 'urgent'"),
        (body(severity=True), "severity", "not a boolean"),
        (body(location={"lat": 95, "lon": 126}), "location.lat", "less than or equal to 90"),
        (body(location={"lat": "north", "lon": 126}), "location.lat", "valid number"),
        (body(location={"lat": "37.5", "lon": 126}), "location.lat", "valid number"),
        (body(location={"lat": True, "lon": 126}), "location.lat", "valid number"),
        (body(location={"lat": 37.0}), "location.lon", "Field required"),
        (body(location=[37.0, 126.0]), "location", "valid dictionary"),
        (body(location={"lat": 37, "lon": 126, "alt": 3}), "location.alt", "Extra inputs are not permitted"),
        (b'{"category": "fire"}', "$", "give a location {lat, lon}, an area or a camera_id"),
        (b'{"category": "fire", "location": null}', "$", "give a location"),
        (body(area={"type": "Point", "coordinates": [1, 2]}), "area", "does not match any of the expected tags"),
        (
            body(area={"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1]]]}),
            "area.Polygon.coordinates[0]",
            "at least 4 items",
        ),
        (body(area={"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}), "area", "closed"),
        (
            body(
                area={"type": "Polygon", "coordinates": [[[37.5, 126.6], [37.6, 126.6], [37.6, 126.7], [37.5, 126.6]]]}
            ),
            "area",
            "positions are [lon, lat]",
        ),
        (
            body(area={"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}),
            "area",
            "self-intersecting",
        ),
        (
            body(area={"type": "Polygon", "coordinates": [[["a", 0], [1, 0], [1, 1], [0, 0]]]}),
            "area.Polygon.coordinates[0][0][0]",
            "valid number",
        ),
        (body(area={"type": "MultiPolygon", "coordinates": []}), "area.MultiPolygon.coordinates", "at least 1"),
        (body(camera_id="cam 7; drop table"), "camera_id", "camera ids are 1-64"),
        (body(camera_id="c" * 65), "camera_id", "camera ids are 1-64"),
        (body(camera_id=17), "camera_id", "valid string"),
        (body(observed_at="yesterday"), "observed_at", "valid datetime"),
        (body(observed_at="2026-11-25T06:00:00"), "observed_at", "needs a UTC offset"),
        (body(observed_at="2026-11-25T07:00:00Z"), "observed_at", "in the future"),
        (body(description=["a"]), "description", "valid string"),
        (body(description="x" * 2001), "description", "at most 2000"),
        (body(source_ref=""), "source_ref", "at least 1"),
        (body(source_ref="r" * 129), "source_ref", "at most 128"),
        (body(description="smoke\u0000"), "description", "NUL character"),
        (body(location={"lat": 1, "lon": 2, "x\u0000": 1}), "location", "NUL character"),
        (b'{"category": "fire", "camera_id": "c", "tags": ["ok", "bad\\u0000"]}', "tags[1]", "NUL character"),
        (body(unexpected=1), "unexpected", "Extra inputs are not permitted"),
    ],
)
def test_bad_input_says_where_and_why(payload: bytes | str, path: str, reason: str) -> None:
    found = problems(payload)
    assert path in found, found
    assert reason in found[path], found


def test_every_problem_is_reported_at_once() -> None:
    found = problems(body(category="x", severity=9, location={"lat": 200, "lon": -500}))
    assert set(found) == {"category", "severity", "location.lat", "location.lon"}


def test_error_detail_for_http() -> None:
    with pytest.raises(IngestError) as info:
        parse_webhook(body(location={"lat": 95, "lon": 1}), NOW)
    assert info.value.source == "webhook"
    assert info.value.as_detail() == [{"loc": "location.lat", "msg": "Input should be less than or equal to 90"}]
    assert str(info.value).startswith("webhook: location.lat:")


def test_small_clock_skew_is_accepted() -> None:
    ahead = NOW + timedelta(minutes=2)
    assert parse_webhook(body(observed_at=ahead.isoformat()), NOW).observed_at == ahead


SQUARE = [[126.63, 37.53], [126.65, 37.53], [126.65, 37.54], [126.63, 37.54], [126.63, 37.53]]


def test_area_alone_places_the_report_at_its_centre() -> None:
    report = parse_webhook({"category": "flood", "area": {"type": "Polygon", "coordinates": [SQUARE]}}, NOW)
    assert (report.lat, report.lon) == pytest.approx((37.535, 126.64))
    assert report.area == {"type": "Polygon", "coordinates": [SQUARE]}


def test_area_with_location_keeps_the_location() -> None:
    report = parse_webhook(
        {"category": "flood", "location": PARK, "area": {"type": "MultiPolygon", "coordinates": [[SQUARE]]}}, NOW
    )
    assert (report.lat, report.lon) == (PARK["lat"], PARK["lon"])
    assert report.area is not None and report.area["type"] == "MultiPolygon"
