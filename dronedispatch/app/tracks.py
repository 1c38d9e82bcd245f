"""The flown track of each mission, kept in the store at about one sample a second.

Telemetry arrives on the event loop at the link's rate (several per second per drone); the
recorder keeps one sample per mission per ``interval_s`` and writes the collected samples in one
batch every ``flush_s`` from a worker thread, so the loop never waits for the database. When a
write fails (the database is away) the samples stay queued and go with the next batch; only past
``max_pending`` samples does the oldest give way, and that is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from datetime import datetime

from dronedispatch.app.ports import TelemetryRepository
from dronedispatch.store.models import TelemetrySample

log = logging.getLogger(__name__)


class TrackRecorder:
    def __init__(
        self,
        repo: TelemetryRepository,
        *,
        interval_s: float = 1.0,
        flush_s: float = 2.0,
        max_pending: int = 200_000,
    ) -> None:
        self._repo = repo
        self._interval_s = interval_s
        self._flush_s = flush_s
        self._pending: deque[TelemetrySample] = deque(maxlen=max_pending)
        self._last_at: dict[int, datetime] = {}
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self.dropped = 0

    def observe(
        self,
        mission_id: int,
        drone_id: str,
        at: datetime,
        lat: float,
        lon: float,
        alt_m: float,
        battery_pct: float | None,
        speed_ms: float | None,
    ) -> None:
        """One telemetry update of a drone flying ``mission_id`` (on the loop; never blocks)."""
        last = self._last_at.get(mission_id)
        # ``at`` is wall time (what the record shows): after the clock stepped back the gap is negative, and a
        # plain "less than the interval" would drop every sample until the clock caught up again
        if last is not None and 0.0 <= (at - last).total_seconds() < self._interval_s:
            return
        self._last_at[mission_id] = at
        sample = TelemetrySample(
            mission_id=mission_id, drone_id=drone_id, at=at, lat=lat, lon=lon, alt_m=alt_m,
            battery_pct=battery_pct, speed_ms=speed_ms,
        )  # fmt: skip
        self._keep(sample)

    def _keep(self, sample: TelemetrySample) -> None:
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.warning("track samples waiting for the store exceed %d: %d oldest dropped",
                            self._pending.maxlen, self.dropped)  # fmt: skip
        self._pending.append(sample)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="track-recorder")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Write what is queued; on failure keep it for the next attempt."""
        if not self._pending:
            return
        batch, self._pending = self._pending, deque(maxlen=self._pending.maxlen)
        try:
            await asyncio.to_thread(self._repo.add_samples, list(batch))
        except Exception as exc:
            # a store outage fails every flush: the first with its traceback, then one line each
            log.warning("writing %d track samples failed; kept for the next attempt: %s", len(batch), exc,
                        exc_info=not self._failing)  # fmt: skip
            self._failing = True
            newer, self._pending = self._pending, batch  # the failed batch goes first, then what came meanwhile
            for sample in newer:
                self._keep(sample)
            return
        self._failing = False

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            await self.flush()
            self._forget_ended()

    def _forget_ended(self) -> None:
        """Missions not heard of for a minute have ended (or their drone went quiet): forget their clock."""
        if not self._last_at:
            return
        newest = max(self._last_at.values())
        for mission_id, at in list(self._last_at.items()):
            if (newest - at).total_seconds() > 60:
                del self._last_at[mission_id]
