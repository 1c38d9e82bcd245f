"""The track recorder keeps one sample a second per mission and loses none while the store is away."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from dronedispatch.app.tracks import TrackRecorder
from dronedispatch.store.models import TelemetrySample

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


class FlakyRepo:
    def __init__(self) -> None:
        self.rows: list[TelemetrySample] = []
        self.down = False

    def add_samples(self, samples: Sequence[TelemetrySample]) -> None:
        if self.down:
            raise ConnectionError("database away")
        self.rows.extend(samples)

    def track(self, mission_id: int) -> list[TelemetrySample]:
        return [s for s in self.rows if s.mission_id == mission_id]


def feed(recorder: TrackRecorder, mission_id: int, start: datetime, seconds: float, hz: float) -> None:
    n = int(seconds * hz)
    for i in range(n):
        at = start + timedelta(seconds=i / hz)
        recorder.observe(mission_id, f"dd-{mission_id:02d}", at, 37.39 + i * 1e-5, 126.63, 40.0, 80.0 - i * 0.01, 8.0)


async def test_one_sample_a_second_per_mission() -> None:
    repo = FlakyRepo()
    recorder = TrackRecorder(repo)
    feed(recorder, 1, T0, 10, hz=10)  # ten updates a second
    feed(recorder, 2, T0, 5, hz=4)
    await recorder.flush()
    assert [s.at for s in repo.track(1)] == [T0 + timedelta(seconds=i) for i in range(10)]
    assert len(repo.track(2)) == 5 and {s.drone_id for s in repo.track(2)} == {"dd-02"}


async def test_samples_wait_for_the_store_in_order() -> None:
    repo = FlakyRepo()
    recorder = TrackRecorder(repo)
    repo.down = True
    feed(recorder, 1, T0, 3, hz=1)
    await recorder.flush()
    feed(recorder, 1, T0 + timedelta(seconds=3), 3, hz=1)
    await recorder.flush()
    assert repo.rows == []
    repo.down = False
    await recorder.flush()
    assert [s.at for s in repo.rows] == [T0 + timedelta(seconds=i) for i in range(6)]
    await recorder.flush()  # nothing written twice
    assert len(repo.rows) == 6


async def test_a_full_queue_gives_up_the_oldest_and_counts_them() -> None:
    repo = FlakyRepo()
    recorder = TrackRecorder(repo, max_pending=4)
    repo.down = True
    feed(recorder, 1, T0, 6, hz=1)
    await recorder.flush()
    repo.down = False
    await recorder.flush()
    assert recorder.dropped == 2
    assert [s.at for s in repo.rows] == [T0 + timedelta(seconds=i) for i in range(2, 6)]


async def test_a_wall_clock_stepping_back_does_not_stop_the_track() -> None:
    """Ten minutes back: the samples after the step are kept at their interval, not dropped until the clock
    has caught up with the last one before it."""
    repo = FlakyRepo()
    recorder = TrackRecorder(repo)
    feed(recorder, 1, T0, seconds=5, hz=5)
    feed(recorder, 1, T0 - timedelta(minutes=10), seconds=5, hz=5)
    await recorder.flush()
    back = T0 - timedelta(minutes=10)
    assert [s.at for s in repo.track(1)] == [T0 + timedelta(seconds=i) for i in range(5)] + [
        back + timedelta(seconds=i) for i in range(5)
    ]
