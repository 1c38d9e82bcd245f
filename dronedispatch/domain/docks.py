"""A dock as a device: its door, the drone on it, its charger, its faults and its weather station.

A dock (or a vendor's bridge in front of it) publishes its whole state as one JSON object (the
layout is in ``docs/docks-mqtt.md``); :func:`parse_state` validates that payload into a
:class:`DockState`. Pure: no I/O, times are given by the caller.

A state is *fresh* while it is at most :data:`FRESH_S` old: docks publish on every change and at
least every 5 s, so a state older than that means the dock (or its bridge) has gone silent. A dock
is *healthy* when its state is fresh, it reports no fault and its door is not in fault.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

#: A state older than this (seconds) is stale: the dock counts as unhealthy.
FRESH_S = 15.0
#: Docks publish on every change and at least this often (seconds).
PUBLISH_EVERY_S = 5.0


class DoorState(StrEnum):
    CLOSED = "closed"
    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"
    FAULT = "fault"


class DockCommand(StrEnum):
    OPEN = "open"
    CLOSE = "close"


class _Payload(BaseModel):
    # a newer bridge may add fields: ignored; a wrong type is never coerced ("true" is not a bool)
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class Weather(_Payload):
    """The dock's weather station: 10-minute mean wind, gust, rain rate, air temperature."""

    wind_mean_ms: float = Field(ge=0, le=100, description="Mean wind speed, m/s.")
    gust_ms: float = Field(ge=0, le=150, description="Gust speed, m/s.")
    rain_mm_h: float = Field(ge=0, le=500, description="Rain rate, mm/h.")
    temperature_c: float = Field(ge=-80, le=70, description="Air temperature, °C.")
    at: AwareDatetime = Field(description="When measured (ISO 8601 with a UTC offset).")

    @model_validator(mode="after")
    def _gust_not_below_mean(self) -> Weather:
        if self.gust_ms < self.wind_mean_ms:
            raise ValueError("gust_ms is below wind_mean_ms")
        return self


class CommandOutcome(_Payload):
    """How the latest open/close command ended."""

    request_id: str = Field(min_length=1, max_length=100)
    result: Literal["ok", "fault"]
    reason: str | None = Field(default=None, max_length=500)


class DockState(_Payload):
    """Everything a dock reports, as published on its state topic."""

    dock_id: str = Field(min_length=1, max_length=100)
    door: DoorState
    drone_present: bool
    charging: bool
    charge_pct: float | None = Field(default=None, ge=0, le=100, description="Battery of the drone on the dock.")
    minutes_to_threshold: float | None = Field(
        default=None, ge=0, description="Expected minutes until the battery reaches the launch threshold."
    )
    fault: str | None = Field(default=None, max_length=500, description="Why the dock is out of order, if it is.")
    weather: Weather | None = None
    door_open_s: float | None = Field(
        default=None, ge=0, le=600,
        description="Seconds the door took to open at its last opening, as the dock measured it (its rated time "
        "before any); None: not reported.",
    )  # fmt: skip
    updated_at: AwareDatetime = Field(description="When the dock produced this state.")
    last_command: CommandOutcome | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DockState:
        if self.door is DoorState.FAULT and not self.fault:
            raise ValueError("door is 'fault' but no fault is given")
        if self.charging and not self.drone_present:
            raise ValueError("charging with no drone present")
        return self

    def age_s(self, now: datetime) -> float:
        return (now - self.updated_at).total_seconds()

    def fresh(self, now: datetime, max_age_s: float = FRESH_S) -> bool:
        return self.age_s(now) <= max_age_s

    def healthy(self, now: datetime, max_age_s: float = FRESH_S) -> bool:
        """No fault, door not in fault, state fresh."""
        return self.fault is None and self.door is not DoorState.FAULT and self.fresh(now, max_age_s)

    def problem(self, now: datetime, max_age_s: float = FRESH_S) -> str | None:
        """Why the dock is not healthy, in a sentence; None when it is."""
        if self.fault is not None:
            return self.fault
        if self.door is DoorState.FAULT:
            return "door fault"
        if not self.fresh(now, max_age_s):
            return f"no state from the dock for {self.age_s(now):.0f} s"
        return None

    def to_json(self) -> str:
        return self.model_dump_json()


class DockPayloadError(ValueError):
    """A state payload that is not a valid dock state; the message says what is wrong."""


def _explain(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors()[:3]:
        where = ".".join(str(p) for p in e.get("loc", ())) or "$"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)


def parse_state(payload: bytes | str, *, dock_id: str | None = None) -> DockState:
    """Validate a state payload; ``dock_id`` (from the topic) must match the payload's own."""
    try:
        state = DockState.model_validate_json(payload)
    except ValidationError as exc:
        raise DockPayloadError(_explain(exc)) from None
    if dock_id is not None and state.dock_id != dock_id:
        raise DockPayloadError(f"dock_id {state.dock_id!r} does not match the topic's dock {dock_id!r}")
    return state


class CommandRequest(_Payload):
    """What the service publishes on a dock's command topic."""

    command: DockCommand
    request_id: str = Field(min_length=1, max_length=100)


def parse_command(payload: bytes | str) -> CommandRequest:
    try:
        return CommandRequest.model_validate_json(payload)
    except ValidationError as exc:
        raise DockPayloadError(_explain(exc)) from None


# -- topics ---------------------------------------------------------------------------------------

TOPIC_PREFIX = "dronedispatch/docks"


def state_topic(dock_id: str, prefix: str = TOPIC_PREFIX) -> str:
    return f"{prefix}/{dock_id}/state"


def command_topic(dock_id: str, prefix: str = TOPIC_PREFIX) -> str:
    return f"{prefix}/{dock_id}/command"


def dock_of_topic(topic: str, kind: Literal["state", "command"], prefix: str = TOPIC_PREFIX) -> str | None:
    """The dock id of ``<prefix>/<dock_id>/<kind>``, or None for any other topic."""
    head = prefix + "/"
    tail = "/" + kind
    if not (topic.startswith(head) and topic.endswith(tail)):
        return None
    dock_id = topic[len(head) : -len(tail)]
    return dock_id if dock_id and "/" not in dock_id else None


def parse_weather_spec(text: str, at: datetime) -> Weather:
    """``wind=5,gust=8,rain=0,temp=12`` (any subset; missing: calm, dry, 15 °C) -> Weather."""
    names = {"wind": "wind_mean_ms", "gust": "gust_ms", "rain": "rain_mm_h", "temp": "temperature_c"}
    values: dict[str, float] = {"wind_mean_ms": 0.0, "rain_mm_h": 0.0, "temperature_c": 15.0}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in names:
            raise ValueError(f"expected wind=,gust=,rain=,temp= pairs, got {part!r}")
        try:
            values[names[key.strip()]] = float(value)
        except ValueError:
            raise ValueError(f"{key.strip()} wants a number, got {value!r}") from None
    values.setdefault("gust_ms", values["wind_mean_ms"])
    try:
        return Weather(**values, at=at)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ValueError(_explain(exc)) from None
