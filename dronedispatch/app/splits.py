"""Undoing a merge: an operator moves one report out of an incident into an incident of its own.

The store moves the report, fixes both report counts and audits ``incident.split`` in one
transaction; the new incident is open at the report's position and can be dispatched at once.
Both incidents are published so every view shows the change.
"""

from __future__ import annotations

from typing import Protocol

from dronedispatch.app.errors import Conflict, Unprocessable
from dronedispatch.bus import Publisher
from dronedispatch.events import IncidentChanged
from dronedispatch.schemas import IncidentPublic
from dronedispatch.store.models import Incident
from dronedispatch.store.repo import SplitRefused


class SplitStore(Protocol):
    def split_report(self, incident_id: int, report_id: int, *, actor: str) -> tuple[Incident, Incident]: ...


class SplitRefusedError(Conflict):
    """The incident is closed, or the report is its only one: nothing to split."""


class ReportSplitter:
    def __init__(self, store: SplitStore, publisher: Publisher) -> None:
        self._store = store
        self._publisher = publisher

    def split(self, incident_id: int, report_id: int, actor: str) -> tuple[Incident, Incident]:
        """(the incident left, the new incident). Blocking: call from a worker thread."""
        try:
            old, new = self._store.split_report(incident_id, report_id, actor=actor)
        except SplitRefused as exc:
            if exc.code == "no_location":
                raise Unprocessable(exc.reason, exc.code) from exc
            raise SplitRefusedError(exc.reason, exc.code) from exc
        for incident in (old, new):
            self._publisher.publish(IncidentChanged(data=IncidentPublic.of(incident)))
        return old, new
