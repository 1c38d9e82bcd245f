"""The operations view's starting point: everything a browser shows before the stream of changes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dronedispatch.app.fleet import Fleet
from dronedispatch.app.missions import MissionSupervisor
from dronedispatch.events import Snapshot
from dronedispatch.schemas import IncidentPublic
from dronedispatch.store.models import Incident, Mission


class OverviewStore(Protocol):
    def open_incidents(self) -> Sequence[Incident]: ...
    def list_missions(
        self, *, active: bool | None = None, incident_id: int | None = None, limit: int = 100, offset: int = 0
    ) -> Sequence[Mission]: ...


class Overview:
    def __init__(self, store: OverviewStore, fleet: Fleet, missions: MissionSupervisor) -> None:
        self._store = store
        self._fleet = fleet
        self._missions = missions

    def snapshot(self) -> Snapshot:
        """Drones, open incidents and active missions (blocking: reads the store; call it from a worker thread)."""
        return Snapshot(
            drones=self._fleet.public(),
            incidents=[IncidentPublic.of(i) for i in self._store.open_incidents()],
            missions=[self._missions.public(m) for m in self._store.list_missions(active=True, limit=10_000)],
        )
