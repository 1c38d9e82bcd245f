"""Alerts: what a person must see now, published, logged and kept in one step.

Alerts that concern a mission or a drone are also written to the audit log (``alert.raised``), so an
incident's record can tell later what the pilot was warned of and when. The write runs in a worker
thread when raised on the event loop (a warning must never wait for the database), in the order the
alerts were raised, and waits for a database that is away rather than losing the entry.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from dronedispatch.app.ports import AuditLog
from dronedispatch.app.writes import OrderedWrites
from dronedispatch.bus import Publisher
from dronedispatch.events import AlertRaised
from dronedispatch.schemas import Alert, AlertLevel
from dronedispatch.store.availability import database_unavailable

log = logging.getLogger(__name__)

ALERT_ACTOR = "system"


class Alerts:
    def __init__(self, publisher: Publisher, audit: AuditLog | None = None) -> None:
        self._publisher = publisher
        self._audit = audit
        self._writes = OrderedWrites(retry_if=database_unavailable)

    def raise_(
        self, level: AlertLevel, code: str, message: str, *, drone_id: str | None = None, mission_id: int | None = None
    ) -> None:
        alert = Alert(
            level=level, code=code, message=message, drone_id=drone_id, mission_id=mission_id, at=datetime.now(UTC)
        )
        log.log(logging.WARNING if level != "info" else logging.INFO, "alert %s: %s", code, message)
        self._publisher.publish(AlertRaised(data=alert))
        if self._audit is not None and (mission_id is not None or drone_id is not None):
            self._keep(alert)

    def _keep(self, alert: Alert) -> None:
        target_type, target_id = (
            ("mission", alert.mission_id) if alert.mission_id is not None else ("drone", alert.drone_id)
        )
        detail: dict[str, object] = {
            "level": alert.level,
            "code": alert.code,
            "message": alert.message,
            "drone_id": alert.drone_id,
        }
        if not _on_event_loop():  # raised from a worker thread: write here
            try:
                self._write(target_type, target_id, detail)
            except Exception:  # the alert itself was shown; losing its audit copy must not break the caller
                log.warning("keeping alert %s in the audit log failed", detail["code"], exc_info=True)
            return
        self._writes.submit("alerts", lambda: asyncio.to_thread(self._write, target_type, target_id, detail))

    def _write(self, target_type: str, target_id: object, detail: dict[str, object]) -> None:
        assert self._audit is not None
        self._audit.audit(ALERT_ACTOR, "alert.raised", target_type, target_id, **detail)

    async def drain(self) -> None:
        """Wait for the audit copies written so far (in tests)."""
        await self._writes.drain()

    async def stop(self) -> None:
        """At shutdown: a copy the store cannot take now fails (and is logged) instead of waiting."""
        self._writes.stop_retrying()
        await self._writes.drain()


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
