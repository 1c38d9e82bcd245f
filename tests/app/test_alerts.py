"""Alerts about a drone or a mission are kept in the audit log, without the loop waiting for it."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from sqlalchemy.exc import OperationalError

from dronedispatch.app.alerts import Alerts
from dronedispatch.bus import BusEvent
from dronedispatch.events import AlertRaised


class Published(list[BusEvent]):
    def publish(self, event: BusEvent) -> None:
        self.append(event)


class SlowAudit:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, str, object, dict[str, Any]]] = []
        self.threads: set[str] = set()
        self.fail = False

    def audit(self, actor: str, action: str, target_type: str, target_id: object, **detail: Any) -> None:
        self.threads.add(threading.current_thread().name)
        if self.fail:
            raise ConnectionError("database away")
        self.entries.append((actor, action, target_type, target_id, detail))


async def test_alerts_are_published_and_kept_off_the_loop() -> None:
    seen, audit = Published(), SlowAudit()
    alerts = Alerts(seen, audit)
    alerts.raise_("critical", "link_lost", "dd-01: link lost", drone_id="dd-01", mission_id=7)
    alerts.raise_("warning", "vehicle_message", "dd-02: wind", drone_id="dd-02")
    alerts.raise_("info", "ingest", "a report was refused")  # about nothing kept: not audited
    await alerts.drain()
    assert [type(e) for e in seen] == [AlertRaised] * 3
    assert sorted(audit.entries, key=lambda e: e[2]) == [
        ("system", "alert.raised", "drone", "dd-02",
         {"level": "warning", "code": "vehicle_message", "message": "dd-02: wind", "drone_id": "dd-02"}),
        ("system", "alert.raised", "mission", 7,
         {"level": "critical", "code": "link_lost", "message": "dd-01: link lost", "drone_id": "dd-01"}),
    ]  # fmt: skip
    assert threading.main_thread().name not in audit.threads


async def test_a_failed_audit_write_does_not_lose_the_alert() -> None:
    seen, audit = Published(), SlowAudit()
    audit.fail = True
    Alerts(seen, audit).raise_("critical", "link_lost", "dd-01: link lost", drone_id="dd-01", mission_id=7)
    assert len(seen) == 1


async def test_audit_copies_wait_for_a_database_that_is_away() -> None:
    seen, audit = Published(), SlowAudit()
    alerts = Alerts(seen, audit)
    down = OperationalError("INSERT", {}, psycopg.OperationalError("connection refused"))
    calls = {"n": 0}
    real = audit.audit

    def flaky(*args: Any, **kw: Any) -> None:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise down
        real(*args, **kw)

    audit.audit = flaky  # type: ignore[method-assign]
    alerts.raise_("critical", "link_lost", "dd-01: link lost", drone_id="dd-01", mission_id=7)
    alerts.raise_("warning", "battery_low", "dd-01: battery low", drone_id="dd-01", mission_id=7)
    await alerts.drain()
    assert [e[4]["code"] for e in audit.entries] == ["link_lost", "battery_low"]  # none lost, in order
