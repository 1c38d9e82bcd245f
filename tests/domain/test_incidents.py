from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dronedispatch.cityfiles import DEFAULT_CAMERAS
from dronedispatch.domain.assets import load_assets
from dronedispatch.domain.geo import destination, distance_m
from dronedispatch.domain.incidents import (
    Category,
    IncidentStatus,
    LocationError,
    MergePolicy,
    OpenIncident,
    Report,
    Severity,
    locate_report,
    match_report,
)

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
PARK = (37.3926, 126.6378)


def report(at=PARK, *, category=Category.FIRE, minutes: float = 0, source="webhook", ref=None, camera=None,
           severity=Severity.MODERATE) -> Report:
    return Report(source=source, source_ref=ref, category=category, severity=severity,
                  lat=at[0] if at else None, lon=at[1] if at else None, camera_id=camera,
                  observed_at=T0 + timedelta(minutes=minutes))


def incident(iid=1, at=PARK, **kw) -> OpenIncident:
    return OpenIncident.from_report(iid, report(at, **kw))


def test_same_category_nearby_and_recent_merges() -> None:
    inc = incident()
    d = match_report(report(destination(*PARK, 45, 200), minutes=5), [inc])
    assert d.incident_id == 1 and not d.is_new and not d.duplicate
    assert d.distance_m == pytest.approx(200, abs=0.5)
    assert "200 m from incident 1" in d.reason


def test_other_category_far_away_or_late_opens_a_new_incident() -> None:
    inc = incident()
    assert match_report(report(category=Category.CRIME, minutes=1), [inc]).is_new
    assert match_report(report(destination(*PARK, 0, 600), minutes=1), [inc]).is_new  # fire radius 500 m
    late = match_report(report(minutes=31), [inc])
    assert late.is_new and "500 m and 30 min" in late.reason


def test_window_counts_from_the_latest_report() -> None:
    inc = incident().merged(report(minutes=25))
    assert match_report(report(minutes=50), [inc]).incident_id == 1


def test_closed_incidents_never_absorb_reports() -> None:
    from dataclasses import replace

    inc = replace(incident(), status=IncidentStatus.CLOSED)
    assert match_report(report(minutes=1), [inc]).is_new


def test_redelivered_report_is_a_duplicate_even_elsewhere() -> None:
    inc = incident(ref="frigate-123", source="frigate")
    d = match_report(report(destination(*PARK, 0, 5000), ref="frigate-123", source="frigate", minutes=90), [inc])
    assert d.duplicate and d.incident_id == 1


def test_same_camera_merges_beyond_the_radius() -> None:
    inc = incident(category=Category.TRAFFIC_ACCIDENT, camera="cctv-x")
    far = report(destination(*PARK, 0, 400), category=Category.TRAFFIC_ACCIDENT, camera="cctv-x", minutes=2)
    assert match_report(far, [inc]).incident_id == 1


def test_nearest_of_several_matches_wins() -> None:
    a = incident(1, destination(*PARK, 0, 300))
    b = incident(2, destination(*PARK, 180, 100))
    assert match_report(report(minutes=1), [a, b]).incident_id == 2


def test_merge_keeps_position_and_raises_severity() -> None:
    inc = incident(camera="c1", ref="r1")
    m = inc.merged(report(destination(*PARK, 0, 100), severity=Severity.EXTREME, camera="c2", ref="r2", minutes=3))
    assert (m.lat, m.lon) == PARK, "a drone already flying there must not be redirected"
    assert m.severity == Severity.EXTREME and m.report_count == 2
    assert m.camera_ids == {"c1", "c2"} and m.last_seen == T0 + timedelta(minutes=3)


def test_policy_radius_per_category() -> None:
    p = MergePolicy(radius_m={Category.FIRE: 50.0})
    assert match_report(report(destination(*PARK, 0, 100), minutes=1), [incident()], p).is_new


@given(st.lists(st.tuples(st.floats(0, 360), st.floats(0, 240), st.floats(0, 29)), min_size=1, max_size=25))
def test_a_burst_of_reports_of_one_event_forms_one_incident(reports) -> None:
    """Reports within 240 m of each other's centre (fire radius 500 m) and 30 min → one incident."""
    incidents: list[OpenIncident] = []
    for n, (brg, dist, minutes) in enumerate(reports):
        r = report(destination(*PARK, brg, dist), minutes=minutes, ref=f"r{n}")
        d = match_report(r, incidents)
        if d.is_new:
            incidents.append(OpenIncident.from_report(len(incidents) + 1, r))
        else:
            incidents = [i.merged(r) if i.id == d.incident_id else i for i in incidents]
    assert len(incidents) == 1 and incidents[0].report_count == len(reports)


def test_report_naming_a_camera_takes_its_position_from_the_registry() -> None:
    cams = load_assets(DEFAULT_CAMERAS)
    cam = cams.get("cctv-songdo-centralpark")
    assert cam is not None
    r = locate_report(report(None, camera="cctv-songdo-centralpark", source="frigate"), cams)
    assert r.lat is not None and r.lon is not None
    assert distance_m(r.lat, r.lon, cam.lat, cam.lon) == pytest.approx(cam.range_m / 2, rel=1e-6)
    assert distance_m(r.lat, r.lon, *PARK) < 100


def test_own_coordinates_win_and_areas_give_a_centroid() -> None:
    cams = load_assets(DEFAULT_CAMERAS)
    r = locate_report(report((37.5, 126.6), camera="cctv-songdo-centralpark"), cams)
    assert (r.lat, r.lon) == (37.5, 126.6)
    area = {"type": "Polygon", "coordinates": [[[126.0, 37.0], [126.2, 37.0], [126.2, 37.2], [126.0, 37.2],
                                                [126.0, 37.0]]]}
    r = locate_report(report(None).model_copy(update={"area": area}), None)
    assert (r.lat, r.lon) == pytest.approx((37.1, 126.1))


def test_unlocatable_reports_say_why() -> None:
    cams = load_assets(DEFAULT_CAMERAS)
    with pytest.raises(LocationError, match="unknown camera 'cctv-nope'"):
        locate_report(report(None, camera="cctv-nope"), cams)
    with pytest.raises(LocationError, match="neither coordinates"):
        locate_report(report(None), cams)
    with pytest.raises(LocationError, match="locate the report"):
        match_report(report(None), [])
    with pytest.raises(LocationError, match="not a GeoJSON"):
        locate_report(report(None).model_copy(update={"area": {"type": "Polygon"}}), None)


def test_naive_times_from_a_database_compare_as_utc() -> None:
    from dataclasses import replace

    inc = replace(incident(), first_seen=T0.replace(tzinfo=None), last_seen=T0.replace(tzinfo=None))
    assert match_report(report(minutes=5), [inc]).incident_id == 1
    assert match_report(report(minutes=45), [inc]).is_new
