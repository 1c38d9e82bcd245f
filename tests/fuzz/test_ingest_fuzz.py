"""Ingest parsers under hostile input: CAP/XML bombs and external entities, deep nesting, huge
attributes and bodies, invalid UTF-8, and MQTT payloads of every shape through every subscribed
topic. Each input gets a clear refusal (IngestError naming where) or reports; nothing else escapes,
nothing stalls."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dronedispatch.domain.incidents import Report
from dronedispatch.ingest import IngestError, IngestStats, MqttIngest, default_topics, parse_cap
from dronedispatch.ingest.base import MAX_PAYLOAD_BYTES, as_reports
from dronedispatch.ingest.cap import MAX_CAP_BYTES

from .budget import FUZZ, no_stall

DATA = Path(__file__).parent.parent / "ingest" / "data"
NOW = datetime(2026, 11, 25, 6, 30, tzinfo=UTC)
CAP = (DATA / "cap_flood_ko_en.xml").read_text()
CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"


def _refused_or_reports(payload: bytes) -> list[Report] | IngestError:
    with no_stall():
        try:
            reports = as_reports(parse_cap(payload, NOW))
        except IngestError as exc:
            assert exc.problems and all(p.path and p.reason for p in exc.problems)
            return exc
    assert all(isinstance(r, Report) for r in reports)
    return reports


# -- CAP / XML -----------------------------------------------------------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    + f']><alert xmlns="{CAP_NS}"><identifier>&lol9;</identifier></alert>'
)
QUADRATIC = (
    f'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY a "{"a" * 50_000}">]>'
    f'<alert xmlns="{CAP_NS}"><identifier>{"&a;" * 10_000}</identifier></alert>'
)
XXE_FILE = (
    '<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    f'<alert xmlns="{CAP_NS}"><identifier>&x;</identifier></alert>'
)
XXE_PARAMETER = (
    '<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY % p SYSTEM "http://127.0.0.1:9/evil.dtd"> %p;]>'
    f'<alert xmlns="{CAP_NS}"/>'
)
EXTERNAL_DTD = f'<?xml version="1.0"?><!DOCTYPE alert SYSTEM "http://127.0.0.1:9/cap.dtd"><alert xmlns="{CAP_NS}"/>'


@pytest.mark.parametrize(
    "doc", [BILLION_LAUGHS, QUADRATIC, XXE_FILE, XXE_PARAMETER, EXTERNAL_DTD], ids=["laughs", "quadratic", "xxe",
                                                                                   "xxe-param", "external-dtd"]
)  # fmt: skip
def test_entity_bombs_and_external_entities_are_refused(doc: str) -> None:
    out = _refused_or_reports(doc.encode())
    assert isinstance(out, IngestError)
    assert "root:" not in str(out)  # nothing of /etc/passwd came back


def _nested(depth: int) -> str:
    return f'<alert xmlns="{CAP_NS}">' + "<info>" * depth + "</info>" * depth + "</alert>"


def test_deep_nesting_huge_attributes_and_oversized_bodies_are_refused() -> None:
    depth = (MAX_CAP_BYTES - 100) // 13
    for doc in (
        _nested(depth).encode(),
        ("<a>" * depth + "</a>" * depth).encode(),
        f'<alert xmlns="{CAP_NS}" note="{"x" * (MAX_CAP_BYTES - 200)}"/>'.encode(),
        CAP.replace("<identifier>", f'<identifier huge="{"y" * (MAX_CAP_BYTES // 2)}">', 1).encode(),
        CAP.encode() + b" " * MAX_CAP_BYTES,  # over the limit, however harmless
        b"<" * (MAX_CAP_BYTES + 1),
    ):
        assert isinstance(_refused_or_reports(doc), IngestError) or doc.startswith(b"<?xml")


def test_invalid_utf8_and_empty_bodies_are_refused() -> None:
    for doc in (
        b"",
        b"\xff\xfe\x00<",
        CAP.encode().replace(b"<identifier>", b"<identifier>\xc3\x28", 1),
        CAP.encode().replace(b"<identifier>", b"<identifier>\xed\xa0\x80", 1),  # a surrogate, in UTF-8
        b"\x00" * 100,
    ):
        assert isinstance(_refused_or_reports(doc), IngestError)


def test_polygons_as_long_as_the_limit_allows_do_not_stall() -> None:
    """Eighteen areas of 3,000-point polygons (most of the size limit): geometry work stays bounded."""
    points = [f"{37.53 + 0.01 * math.sin(k / 500):.5f},{126.63 + 0.01 * math.cos(k / 500):.5f}" for k in range(3000)]
    ring = " ".join([*points, points[0]])
    area = f"<area><areaDesc>x</areaDesc><polygon>{ring}</polygon></area>"
    body = CAP.replace("</area>", "</area>" + area * 18, 1)
    assert len(body) < MAX_CAP_BYTES
    _refused_or_reports(body.encode())


TAGS = (
    "alert info area polygon circle status msgType identifier sent category severity urgency certainty event "
    "expires language areaDesc scope x:y !--"
).split()
text_st = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


def _element(tag: str, children: list[str], attr: str, text: str) -> str:
    if tag == "!--":
        return f"<!--{text.replace('-', '')}-->"
    return f'<{tag} a="{attr}">{text}{"".join(children)}</{tag}>'


xml_st = st.recursive(
    st.builds(_element, st.sampled_from(TAGS), st.just([]), text_st.map(lambda t: t.replace('"', "")),
              text_st.map(lambda t: t.replace("<", "&lt;").replace("&", "&amp;"))),
    lambda kids: st.builds(_element, st.sampled_from(TAGS), st.lists(kids, max_size=4),
                           st.just(""), st.sampled_from(["", "Actual", "Alert", "37.5,126.6 2", "&amp;", "&#0;"])),
    max_leaves=25,
)  # fmt: skip


@FUZZ
@given(xml_st, st.sampled_from(["", '<?xml version="1.0"?>', '<?xml version="1.0" encoding="latin-1"?>']))
def test_any_xml_shaped_like_cap_gets_reports_or_a_refusal(body: str, prolog: str) -> None:
    doc = body.replace("<alert ", f'<alert xmlns="{CAP_NS}" ', 1)
    _refused_or_reports((prolog + doc).encode())


@FUZZ
@given(st.binary(max_size=4000))
def test_any_bytes_as_cap(payload: bytes) -> None:
    _refused_or_reports(payload)


# -- MQTT: every subscribed topic, payloads of every shape ---------------------------------------------

TOPICS = ["frigate/reviews", "frigate/events", "dronedispatch/reports/cam-1", "dronedispatch/cap/kma"]


class _Sink:
    def __init__(self) -> None:
        self.reports: list[Report] = []
        self.errors: list[tuple[str, str]] = []

    async def on_report(self, report: Report) -> None:
        self.reports.append(report)

    def on_error(self, topic: str, reason: str) -> None:
        self.errors.append((topic, reason))


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def _ingest(sink: _Sink) -> MqttIngest:
    return MqttIngest(
        "mqtt://127.0.0.1:1", default_topics(), sink.on_report, sink.on_error, stats=IngestStats(), clock=lambda: NOW
    )


def _deliver(loop: asyncio.AbstractEventLoop, topic: str, payload: object) -> tuple[_Sink, IngestStats]:
    sink = _Sink()
    ingest = _ingest(sink)
    with no_stall():
        delivered = loop.run_until_complete(ingest.handle(topic, payload))
    stats = ingest.stats
    name = next(iter(stats.received))
    outcomes = sum(c[name] for c in (stats.accepted, stats.rejected, stats.ignored, stats.failed))
    # one message, one outcome; FAILED would mean an adapter raised something other than a refusal
    assert stats.received[name] == 1 and outcomes == 1, stats.snapshot()
    assert not stats.failed[name], sink.errors
    assert delivered == sink.reports
    if stats.rejected[name]:
        assert sink.errors and all(reason for _, reason in sink.errors)
    return sink, stats


json_st = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-(2**70), 2**70) | st.floats() | text_st,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.sampled_from(["type", "before", "after", "id", "camera", "label", "lat", "lon", "location", "data",
                         "category", "severity", "observed_at", "area", "coordinates", "zones", "objects", "x"]),
        kids, max_size=5,
    ),
    max_leaves=30,
)  # fmt: skip


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()  # NaN and Infinity as Python writes them


@FUZZ
@given(st.sampled_from(TOPICS), json_st)
def test_mqtt_any_json_on_any_topic(loop: asyncio.AbstractEventLoop, topic: str, value: Any) -> None:
    _deliver(loop, topic, _dumps(value))


@FUZZ
@given(st.sampled_from(TOPICS), st.one_of(st.binary(max_size=2000), text_st, st.none(), st.integers()))
def test_mqtt_any_bytes_on_any_topic(loop: asyncio.AbstractEventLoop, topic: str, payload: object) -> None:
    _deliver(loop, topic, payload)


@pytest.mark.parametrize("topic", TOPICS)
def test_mqtt_extreme_payloads_are_refused_clearly(loop: asyncio.AbstractEventLoop, topic: str) -> None:
    deep = 100_000
    for payload in (
        b"",
        b"   ",
        b"[" * deep + b"]" * deep,
        b'{"a":' * deep + b"1" + b"}" * deep,
        b'{"lat": NaN, "lon": Infinity}',
        b'{"lat": 1e999, "lon": -1e999, "severity": 1e999}',
        ('{"severity": ' + "9" * 5000 + "}").encode(),
        b'{"x": "' + b"a" * (MAX_PAYLOAD_BYTES + 1) + b'"}',
        b"x" * (4 * 1024 * 1024),  # megabytes
        b"\xff\xfe" + "{}".encode("utf-16-le"),
        b'{"camera": "\\u0000"}',
        b'{"type": "new", "after": {"camera": ' + b"[" * 40 + b"]" * 40 + b"}}",
    ):
        _deliver(loop, topic, payload)
