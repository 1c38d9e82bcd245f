"""Flown tracks in the store, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from dronedispatch.store.models import Mission, TelemetrySample
from dronedispatch.store.repo import Store
from dronedispatch.store.telemetry import BATCH_ROWS, TelemetryStore
from tests.store.test_repo import report

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def sample(mission_id: int, second: int) -> TelemetrySample:
    return TelemetrySample(mission_id=mission_id, drone_id="dd-01", at=T0 + timedelta(seconds=second),
                           lat=37.39 + second * 1e-5, lon=126.63, alt_m=float(second), battery_pct=90.0,
                           speed_ms=None)  # fmt: skip


def test_tracks_come_back_in_time_order_across_batches(store: Store, engine: Engine) -> None:
    inc = store.create_incident(report(), 37.39, 126.63)
    assert inc.id is not None
    ids = []
    for drone in ("dd-01", "dd-02"):
        m = store.add_mission(  # a relief: the first mission has ended
            Mission(incident_id=inc.id, drone_id=drone, sysid=1, template="t", created_by="op", state="completed")
        )
        assert m.id is not None
        ids.append(m.id)
    tracks = TelemetryStore(engine)
    n = BATCH_ROWS + 5  # more than one INSERT
    tracks.add_samples([sample(ids[0], s) for s in reversed(range(n))] + [sample(ids[1], 7)])
    first = tracks.track(ids[0])
    assert [s.alt_m for s in first] == [float(s) for s in range(n)]
    assert first[0].at.replace(tzinfo=UTC) == T0 and first[0].battery_pct == 90.0 and first[0].speed_ms is None
    both = tracks.tracks([ids[0], ids[1], 999_999])
    assert set(both) == set(ids) and [s.alt_m for s in both[ids[1]]] == [7.0]
    assert tracks.track(999_999) == [] and tracks.tracks([]) == {}
