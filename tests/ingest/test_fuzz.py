"""Whatever arrives, an adapter returns reports/None or raises IngestError — nothing else escapes."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dronedispatch.domain.incidents import Report
from dronedispatch.ingest import IngestError, parse_cap, parse_event, parse_json_report, parse_review, parse_webhook
from dronedispatch.ingest.base import as_reports

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 11, 25, 6, 30, tzinfo=UTC)
ADAPTERS = [parse_webhook, parse_json_report, parse_review, parse_event, parse_cap]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


def run(adapter: Any, payload: Any) -> None:
    try:
        for report in as_reports(adapter(payload, NOW)):
            assert isinstance(report, Report)
    except IngestError as exc:
        assert exc.problems and all(p.path and p.reason for p in exc.problems)


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes(payload: bytes) -> None:
    for adapter in ADAPTERS:
        run(adapter, payload)


@FUZZ
@given(json_values)
def test_any_json(value: Any) -> None:
    payload = json.dumps(value).encode()
    for adapter in ADAPTERS:
        run(adapter, payload)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


VALID = {
    parse_review: json.loads((DATA / "frigate_review_new_alert.json").read_text()),
    parse_event: json.loads((DATA / "frigate_event_update.json").read_text()),
    parse_webhook: {
        "category": "fire",
        "severity": 3,
        "location": {"lat": 37.39, "lon": 126.63},
        "camera_id": "c1",
        "observed_at": "2026-11-25T06:00:00Z",
        "description": "d",
        "source_ref": "r",
        "area": {
            "type": "Polygon",
            "coordinates": [[[126.63, 37.53], [126.65, 37.53], [126.65, 37.54], [126.63, 37.53]]],
        },
    },
}


@FUZZ
@given(st.data())
def test_valid_messages_with_one_field_replaced(data: st.DataObject) -> None:
    for adapter, doc in VALID.items():
        path = data.draw(st.sampled_from(_paths(doc)))
        run(adapter, json.dumps(_mutate(doc, path, data.draw(json_values))).encode())


CAP_TEXT = (DATA / "cap_flood_ko_en.xml").read_text()
CAP_FIELDS = [
    "Actual",
    "Alert",
    "Met",
    "Immediate",
    "Severe",
    "Observed",
    "2026-11-25T15:10:00+09:00",
    "37.530,126.630 37.530,126.650 37.540,126.650 37.540,126.630 37.530,126.630",
    "KR-IFEZ-2026-1125-0042",
]


@FUZZ
@given(st.sampled_from(CAP_FIELDS), st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_cap_with_one_value_replaced(field: str, value: str) -> None:
    from xml.sax.saxutils import escape

    run(parse_cap, CAP_TEXT.replace(field, escape(value), 1).encode())
