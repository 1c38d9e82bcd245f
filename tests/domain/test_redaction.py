"""The public flight log's redaction rules: purposes, times, durations, tracks and districts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dronedispatch import cityfiles
from dronedispatch.domain.incidents import Category
from dronedispatch.domain.redaction import (
    MAX_TRACK_POINTS,
    PUBLIC_FIELDS,
    PURPOSES,
    TRACK_DECIMALS,
    Flight,
    district_of,
    duration_minutes,
    minute,
    public_flight,
    purpose_of,
    simplify_track,
)

DISTRICTS = cityfiles.read_structured(cityfiles.DEFAULT_DISTRICTS)
PARK = (37.3926, 126.6378)  # Songdo Central Park


def test_every_category_has_a_generic_purpose() -> None:
    assert set(PURPOSES) == {c.value for c in Category}
    assert purpose_of("fire") == "Fire response"
    assert purpose_of("missing_person") == "Search and rescue"
    assert purpose_of("something new") == "Other response"


def test_time_to_the_minute_and_duration() -> None:
    at = datetime(2026, 12, 3, 17, 5, 59, 999_000, tzinfo=UTC)
    assert minute(at) == "2026-12-03T17:05Z"
    assert minute(at.replace(tzinfo=None)) == "2026-12-03T17:05Z"
    kst = at.astimezone(ZoneInfo("Asia/Seoul"))
    assert minute(kst) == "2026-12-03T17:05Z"
    assert duration_minutes(at, at + timedelta(minutes=12, seconds=29)) == 12
    assert duration_minutes(at, at + timedelta(minutes=12, seconds=31)) == 13
    assert duration_minutes(at, at + timedelta(seconds=5)) == 1


def test_track_is_simplified_and_coarsened() -> None:
    # 1 Hz along a straight line east, with 5 m of jitter: collapses to its two ends
    line = [(37.39 + (0.00004 if i % 2 else 0.0), 126.60 + i * 0.0001) for i in range(600)]
    out = simplify_track(line)
    assert out == [[37.39, 126.6], [37.39, 126.66]]
    # a real turn survives; every coordinate has at most TRACK_DECIMALS decimals
    ell = [(37.39, 126.60 + i * 0.0001) for i in range(100)] + [(37.39 + i * 0.0001, 126.61) for i in range(100)]
    out = simplify_track(ell)
    assert len(out) == 3 and out[1] == [37.39, 126.61]
    for lat, lon in out:
        assert round(lat, TRACK_DECIMALS) == lat and round(lon, TRACK_DECIMALS) == lon
    # hovering on scene (many points within metres) leaves a single coarse point, never the exact spot
    hover = [(PARK[0] + 0.00001 * (i % 3), PARK[1] - 0.00001 * (i % 5)) for i in range(300)]
    assert simplify_track(hover) == [[37.393, 126.638]]
    assert simplify_track([]) == []
    # a long zig-zag is thinned to at most MAX_TRACK_POINTS
    zig = [(37.3 + (i % 2) * 0.01, 126.5 + i * 0.005) for i in range(1000)]
    out = simplify_track(zig)
    assert len(out) == MAX_TRACK_POINTS and out[0] == [37.3, 126.5]


def test_district_from_the_city_outlines() -> None:
    assert district_of(*PARK, DISTRICTS) == ("songdo", "Songdo")
    assert district_of(0.0, 0.0, DISTRICTS) is None


def test_public_row_holds_only_public_fields() -> None:
    start = datetime(2026, 12, 3, 8, 30, 12, tzinfo=UTC)
    flight = Flight(launched_at=start, ended_at=start + timedelta(minutes=9, seconds=50), category="crime",
                    district=None, lat=PARK[0], lon=PARK[1], track=[(37.38123, 126.65678), PARK])  # fmt: skip
    row = public_flight(flight, DISTRICTS)
    assert tuple(row) == PUBLIC_FIELDS
    assert row == {
        "start": "2026-12-03T08:30Z",
        "purpose": "Public safety response",
        "district": "songdo",
        "district_name": "Songdo",
        "duration_min": 10,
        "track": [[37.381, 126.657], [37.393, 126.638]],
    }
    # the store's district wins over the position when it names a known district
    row = public_flight(Flight(start, start + timedelta(minutes=1), "fire", "cheongna", *PARK, []), DISTRICTS)
    assert (row["district"], row["district_name"], row["track"]) == ("cheongna", "Cheongna", [])
