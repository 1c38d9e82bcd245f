"""The public flight log: ended flights as the redaction rules allow the public to see them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from dronedispatch.app.errors import Unprocessable
from dronedispatch.domain.redaction import Flight, public_flight

#: The period shown when none is asked for, and the longest one asked for.
DEFAULT_PERIOD = timedelta(days=30)
MAX_PERIOD = timedelta(days=366)
MAX_ROWS = 500


class FlightLogRepository(Protocol):
    def ended_flights(self, since: datetime, until: datetime, limit: int) -> list[Flight]: ...


class PublicFlightLog:
    def __init__(
        self,
        store: FlightLogRepository,
        districts: Mapping[str, Any],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_rows: int = MAX_ROWS,
    ) -> None:
        self._store = store
        self._districts = districts
        self._now = now
        self.max_rows = max_rows

    def period(self, since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
        """The asked period in UTC, by default the last 30 days; :class:`Unprocessable` when it is reversed
        or longer than a year."""
        until = _utc(until) if until is not None else self._now()
        since = _utc(since) if since is not None else until - DEFAULT_PERIOD
        if since >= until:
            raise Unprocessable("'from' must come before 'to'", "bad_period")
        if until - since > MAX_PERIOD:
            raise Unprocessable("a period of at most 366 days can be asked for at once", "bad_period")
        return since, until

    async def rows(self, since: datetime, until: datetime) -> tuple[list[dict[str, Any]], bool]:
        """Public rows of the flights launched in [since, until), newest first, at most ``max_rows``; and
        whether there were more (the reader narrows the period to see them)."""
        flights = await asyncio.to_thread(self._store.ended_flights, since, until, self.max_rows + 1)
        return [public_flight(f, self._districts) for f in flights[: self.max_rows]], len(flights) > self.max_rows


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
