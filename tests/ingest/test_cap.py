"""CAP 1.2 XML → reports; hostile and non-CAP XML refused with a reason."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from shapely.geometry import Point, shape

from dronedispatch.domain.geo import distance_m
from dronedispatch.domain.incidents import Category, Severity
from dronedispatch.ingest import IngestError, parse_cap

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 11, 25, 6, 30, tzinfo=UTC)
NS = "urn:oasis:names:tc:emergency:cap:1.2"


def cap(
    info: str | None = None,
    *,
    status: str = "Actual",
    msg_type: str = "Alert",
    sent: str = "2026-11-25T15:20:00+09:00",
    head: str = "",
) -> bytes:
    if info is None:
        info = make_info()
    return f"""<?xml version="1.0" encoding="UTF-8"?>{head}
<alert xmlns="{NS}">
  <identifier>T-1</identifier><sender>119@example</sender><sent>{sent}</sent>
  <status>{status}</status><msgType>{msg_type}</msgType><scope>Public</scope>
  {info}
</alert>""".encode()


def make_info(
    category: str = "Fire",
    severity: str = "Severe",
    urgency: str = "Immediate",
    area: str = "<circle>37.3926,126.6378 0.5</circle>",
    extra: str = "",
    event: str = "Building fire",
) -> str:
    return f"""<info>
    <category>{category}</category><event>{event}</event><urgency>{urgency}</urgency>
    <severity>{severity}</severity><certainty>Observed</certainty>{extra}
    <headline>Fire near Central Park</headline>
    <area><areaDesc>Songdo Central Park</areaDesc>{area}</area>
  </info>"""


def test_circle_becomes_point_and_area() -> None:
    [report] = parse_cap(cap(), NOW)
    assert report.source == "cap"
    assert report.source_ref == "cap:119@example:T-1"
    assert report.category is Category.FIRE
    assert report.severity is Severity.SEVERE
    assert report.observed_at == datetime(2026, 11, 25, 6, 20, tzinfo=UTC)
    assert distance_m(report.lat, report.lon, 37.3926, 126.6378) < 5
    assert report.area is not None and report.area["type"] == "Polygon"
    ring = report.area["coordinates"][0]
    assert len(ring) == 33  # 32 segments, closed
    lon, lat = ring[0]
    assert distance_m(lat, lon, 37.3926, 126.6378) == pytest.approx(500, rel=1e-3)
    assert "Fire near Central Park" in report.description
    assert report.raw is not None and report.raw["identifier"] == "T-1" and "<alert" in report.raw["xml"]


def test_recorded_bilingual_flood_gives_one_report_in_korean() -> None:
    reports = parse_cap((DATA / "cap_flood_ko_en.xml").read_bytes(), NOW)
    assert len(reports) == 1
    [report] = reports
    assert report.category is Category.FLOOD
    assert report.severity is Severity.SEVERE
    assert report.description.startswith("청라 수로 범람")
    assert report.area is not None
    poly = shape(report.area)
    assert poly.contains(Point(report.lon, report.lat))
    assert (report.lat, report.lon) == pytest.approx((37.535, 126.64))


def test_language_preference_is_a_parameter() -> None:
    [report] = parse_cap((DATA / "cap_flood_ko_en.xml").read_bytes(), NOW, languages=("en",))
    assert report.description.startswith("River flooding")


def test_overlapping_areas_are_merged() -> None:
    area = "<circle>37.39,126.63 1</circle><circle>37.391,126.631 1</circle>"
    [report] = parse_cap(cap(make_info(area=area)), NOW)
    assert report.area["type"] == "Polygon"
    assert shape(report.area).is_valid


def test_two_areas_make_a_multipolygon() -> None:
    area = "<circle>37.39,126.63 0.2</circle><polygon>37.5,126.5 37.5,126.51 37.51,126.51 37.5,126.5</polygon>"
    [report] = parse_cap(cap(make_info(area=area)), NOW)
    assert report.area["type"] == "MultiPolygon"
    assert len(report.area["coordinates"]) == 2


@pytest.mark.parametrize(
    ("categories", "event", "expected"),
    [
        ("<category>Fire</category>", "x", Category.FIRE),
        ("<category>Transport</category>", "Collision", Category.TRAFFIC_ACCIDENT),
        ("<category>Security</category>", "x", Category.CRIME),
        ("<category>Rescue</category>", "Missing child", Category.MISSING_PERSON),
        ("<category>Met</category>", "호우 경보", Category.FLOOD),
        ("<category>Met</category>", "Strong wind", Category.ENVIRONMENT),
        ("<category>Geo</category>", "Tsunami warning", Category.FLOOD),
        ("<category>Infra</category>", "Bridge damage", Category.FACILITY),
        ("<category>CBRNE</category>", "Chemical leak", Category.ENVIRONMENT),
        ("<category>Health</category>", "x", Category.OTHER),
        ("<category>Safety</category><category>Fire</category>", "x", Category.FIRE),
    ],
)
def test_category_mapping(categories: str, event: str, expected: Category) -> None:
    info = make_info(event=event).replace("<category>Fire</category>", categories)
    [report] = parse_cap(cap(info), NOW)
    assert report.category is expected


@pytest.mark.parametrize(
    ("severity", "urgency", "expected"),
    [
        ("Extreme", "Expected", Severity.EXTREME),
        ("Minor", "Immediate", Severity.MINOR),
        ("Unknown", "Immediate", Severity.SEVERE),
        ("Unknown", "Future", Severity.MODERATE),
    ],
)
def test_severity_mapping(severity: str, urgency: str, expected: Severity) -> None:
    [report] = parse_cap(cap(make_info(severity=severity, urgency=urgency)), NOW)
    assert report.severity is expected


@pytest.mark.parametrize(
    "message",
    [
        cap(status="Test"),
        cap(status="Exercise"),
        cap(status="Draft"),
        cap(msg_type="Cancel"),
        cap(msg_type="Ack"),
        cap(make_info(extra="<expires>2026-11-25T15:00:00+09:00</expires>")),  # expired half an hour ago
        cap(""),  # no info block at all
    ],
)
def test_messages_that_raise_no_incident(message: bytes) -> None:
    assert parse_cap(message, NOW) == []


def test_exercises_can_be_accepted() -> None:
    assert len(parse_cap(cap(status="Exercise"), NOW, statuses=("Actual", "Exercise"))) == 1


def test_two_distinct_infos_give_two_reports() -> None:
    second = make_info(category="Transport", event="Crash", area="<circle>37.5,126.6 0.1</circle>")
    reports = parse_cap(cap(make_info() + second), NOW)
    assert [r.category for r in reports] == [Category.FIRE, Category.TRAFFIC_ACCIDENT]
    assert reports[0].source_ref != reports[1].source_ref


BILLION_LAUGHS = """<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>"""
XXE = '<!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'


@pytest.mark.parametrize(
    ("payload", "path", "reason"),
    [
        (cap(head=BILLION_LAUGHS).replace(b"<identifier>T-1", b"<identifier>&lol9;"), "$", "DTD"),
        (cap(head=XXE).replace(b"<identifier>T-1", b"<identifier>&xxe;"), "$", "DTD"),
        (cap(head='<!DOCTYPE alert SYSTEM "http://127.0.0.1:9/cap.dtd">'), "$", "DTD"),
        (b"<alert><unclosed></alert>", "$", "not well-formed XML"),
        (b"", "$", "not well-formed XML"),
        (b'{"category": "fire"}', "$", "not well-formed XML"),
        (b"<rss><channel/></rss>", "$", "not a CAP alert: root element is rss"),
        (b'<alert xmlns="urn:example:other"/>', "$", "root element is {urn:example:other}alert"),
        (b"<x>" + b"a" * (1024 * 1024) + b"</x>", "$", "limit is"),
        (cap().replace(b"<identifier>T-1</identifier>", b""), "alert.identifier", "required element missing"),
        (cap(sent="25/11/2026 15:20"), "alert.sent", "not a CAP dateTime"),
        (cap(sent="2026-11-25T15:20:00"), "alert.sent", "needs a UTC offset"),
        (cap(make_info(category="Weather")), "alert.info[0].category", "unknown CAP category 'Weather'"),
        (cap(make_info(severity="Huge")), "alert.info[0].severity", "'Huge' is not one of Extreme, Severe"),
        (cap(make_info(urgency="Now")), "alert.info[0].urgency", "'Now' is not one of Immediate"),
        (cap(status="Real"), "alert.status", "'Real' is not one of Actual"),
        (cap(msg_type="Notice"), "alert.msgType", "'Notice' is not one of Alert"),
        (cap(make_info().replace("<event>Building fire</event>", "")), "alert.info[0].event", "required"),
        (
            cap(make_info(area="<geocode><valueName>SAME</valueName><value>1</value></geocode>")),
            "alert.info[0]",
            "no area with a polygon or circle",
        ),
        (cap(make_info(area="<circle>37.39,126.63</circle>")), "alert.info[0].area[0].circle[0]", "radius_km"),
        (cap(make_info(area="<circle>97.39,126.63 1</circle>")), "alert.info[0].area[0].circle[0]", "outside WGS84"),
        (cap(make_info(area="<circle>37.39,126.63 -1</circle>")), "alert.info[0].area[0].circle[0]", "out of range"),
        (cap(make_info(area="<circle>37.39;126.63 1</circle>")), "alert.info[0].area[0].circle[0]", "'lat,lon'"),
        (
            cap(make_info(area="<polygon>37.5,126.5 37.5,126.51 37.51,126.51</polygon>")),
            "alert.info[0].area[0].polygon[0]",
            "at least 4 points",
        ),
        (
            cap(make_info(area="<polygon>37.5,126.5 37.5,126.51 37.51,126.51 37.6,126.6</polygon>")),
            "alert.info[0].area[0].polygon[0]",
            "not closed",
        ),
        (
            cap(make_info(area="<polygon>37.5,126.5 37.6,126.6 37.5,126.6 37.6,126.5 37.5,126.5</polygon>")),
            "alert.info[0].area[0].polygon[0]",
            "self-intersecting",
        ),
        (cap(make_info(extra="<expires>soon</expires>")), "alert.info[0].expires", "not a CAP dateTime"),
    ],
)
def test_bad_cap_says_where_and_why(payload: bytes, path: str, reason: str) -> None:
    with pytest.raises(IngestError) as info:
        parse_cap(payload, NOW)
    found = {p.path: p.reason for p in info.value.problems}
    assert path in found, found
    assert reason in found[path], found


def test_long_identifiers_still_fit_the_store() -> None:
    from dronedispatch.ingest.base import MAX_SOURCE_REF

    long_a = cap().replace(b"<identifier>T-1", b"<identifier>" + b"A" * 300)
    long_b = cap().replace(b"<identifier>T-1", b"<identifier>" + b"A" * 299 + b"B")
    [a], [b] = parse_cap(long_a, NOW), parse_cap(long_b, NOW)
    assert len(a.source_ref) <= MAX_SOURCE_REF and len(b.source_ref) <= MAX_SOURCE_REF
    assert a.source_ref != b.source_ref
    assert a.source_ref.startswith("cap:119@example:AAAA")
