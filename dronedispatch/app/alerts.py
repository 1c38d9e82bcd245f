"""Alerts: what a person must see now, published and logged in one step."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from dronedispatch.bus import Publisher
from dronedispatch.events import AlertRaised
from dronedispatch.schemas import Alert, AlertLevel

log = logging.getLogger(__name__)


class Alerts:
    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher

    def raise_(
        self, level: AlertLevel, code: str, message: str, *, drone_id: str | None = None, mission_id: int | None = None
    ) -> None:
        alert = Alert(
            level=level, code=code, message=message, drone_id=drone_id, mission_id=mission_id, at=datetime.now(UTC)
        )
        log.log(logging.WARNING if level != "info" else logging.INFO, "alert %s: %s", code, message)
        self._publisher.publish(AlertRaised(data=alert))
