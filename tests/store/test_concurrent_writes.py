"""Read-modify-write methods called at once from many threads lose no update."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from dronedispatch.domain.incidents import Category, Report, Severity
from dronedispatch.store.repo import Store

CALLERS = 30


def report(n: int, severity: Severity = Severity.MODERATE) -> Report:
    return Report(
        source="webhook",
        source_ref=f"r-{n}",
        category=Category.FIRE,
        severity=severity,
        lat=37.39,
        lon=126.63,
        observed_at=datetime(2026, 11, 25, 3, 0, tzinfo=UTC),
        description=f"report {n}",
    )


def test_concurrent_merges_count_every_report(store: Store) -> None:
    incident_id = store.create_incident(report(0), 37.39, 126.63).id
    assert incident_id is not None
    start = threading.Barrier(CALLERS)

    def merge(n: int) -> None:
        start.wait()
        store.merge_report(incident_id, report(n, Severity.EXTREME if n == 7 else Severity.MODERATE))

    with ThreadPoolExecutor(CALLERS) as pool:
        list(pool.map(merge, range(1, CALLERS + 1)))
    incident = store.get_incident(incident_id)
    assert incident.report_count == CALLERS + 1 == len(store.incident_reports(incident_id))
    assert incident.severity == Severity.EXTREME
    assert all(f"report {n}" in incident.description for n in range(CALLERS + 1))
