"""Dock state payloads: what is accepted, what is refused and why, freshness and health."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dronedispatch.domain.docks import (
    DockPayloadError,
    DoorState,
    command_topic,
    dock_of_topic,
    parse_command,
    parse_state,
    parse_weather_spec,
    state_topic,
)

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def payload(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dock_id": "gtower",
        "door": "closed",
        "drone_present": True,
        "charging": True,
        "charge_pct": 31.5,
        "minutes_to_threshold": 3.8,
        "fault": None,
        "weather": {"wind_mean_ms": 4.2, "gust_ms": 7.9, "rain_mm_h": 0, "temperature_c": 12.5, "at": NOW.isoformat()},
        "updated_at": NOW.isoformat(),
        "last_command": {"request_id": "r-1", "result": "ok", "reason": None},
    }
    body.update(over)
    return body


def test_a_full_state_is_read_with_every_field() -> None:
    s = parse_state(json.dumps(payload()).encode(), dock_id="gtower")
    assert s.door is DoorState.CLOSED and s.drone_present and s.charging
    assert s.charge_pct == 31.5 and s.minutes_to_threshold == 3.8
    assert s.weather is not None and s.weather.gust_ms == 7.9 and s.weather.rain_mm_h == 0.0
    assert s.last_command is not None and s.last_command.result == "ok"
    assert s.updated_at == NOW
    # the minimum: no charge figures, no weather station, no command yet; unknown fields are ignored
    minimal = {k: v for k, v in payload().items() if k in ("dock_id", "door", "drone_present", "updated_at")}
    s = parse_state(json.dumps({**minimal, "charging": False, "vendor_extra": {"x": 1}}))
    assert s.weather is None and s.charge_pct is None and s.last_command is None
    # round trip: what the simulator publishes, the service reads back unchanged
    assert parse_state(s.to_json()) == s


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not json", "Invalid JSON"),
        (b"[1, 2]", "object"),
        (b"\xff\xfe", "Invalid JSON"),
        (json.dumps(payload(door="ajar")).encode(), "door"),
        (json.dumps(payload(drone_present="true")).encode(), "drone_present"),
        (json.dumps(payload(charge_pct=140)).encode(), "charge_pct"),
        (json.dumps(payload(minutes_to_threshold=-1)).encode(), "minutes_to_threshold"),
        (json.dumps(payload(updated_at="2026-05-01T12:00:00")).encode(), "updated_at"),  # no UTC offset
        (json.dumps({k: v for k, v in payload().items() if k != "updated_at"}).encode(), "updated_at"),
        (json.dumps(payload(door="fault", fault=None)).encode(), "no fault is given"),
        (json.dumps(payload(drone_present=False, charging=True)).encode(), "charging with no drone"),
        (
            json.dumps(
                payload(
                    weather={"wind_mean_ms": 9, "gust_ms": 3, "rain_mm_h": 0, "temperature_c": 1, "at": NOW.isoformat()}
                )
            ).encode(),
            "gust_ms is below",
        ),
        (
            json.dumps(
                payload(
                    weather={
                        "wind_mean_ms": -1,
                        "gust_ms": 3,
                        "rain_mm_h": 0,
                        "temperature_c": 1,
                        "at": NOW.isoformat(),
                    }
                )
            ).encode(),
            "weather.wind_mean_ms",
        ),
        (json.dumps(payload(last_command={"request_id": "r", "result": "maybe"})).encode(), "last_command.result"),
        (json.dumps(payload(dock_id="other")).encode(), "does not match"),
    ],
)
def test_invalid_payloads_are_refused_with_the_reason(body: bytes, why: str) -> None:
    with pytest.raises(DockPayloadError) as err:
        parse_state(body, dock_id="gtower")
    assert why in str(err.value)


def test_fresh_and_healthy() -> None:
    s = parse_state(json.dumps(payload()))
    assert s.fresh(NOW + timedelta(seconds=15)) and s.healthy(NOW + timedelta(seconds=15))
    assert s.problem(NOW) is None
    later = NOW + timedelta(seconds=16)
    assert not s.fresh(later) and not s.healthy(later)
    assert s.problem(later) == "no state from the dock for 16 s"
    faulted = parse_state(json.dumps(payload(fault="door motor overcurrent")))
    assert faulted.fresh(NOW) and not faulted.healthy(NOW) and faulted.problem(NOW) == "door motor overcurrent"
    door_fault = parse_state(json.dumps(payload(door="fault", fault="door jammed")))
    assert not door_fault.healthy(NOW) and door_fault.problem(NOW) == "door jammed"
    # an open door or a charging drone is no fault
    assert parse_state(json.dumps(payload(door="opening"))).healthy(NOW)


def test_topics_and_commands() -> None:
    assert state_topic("gtower") == "dronedispatch/docks/gtower/state"
    assert command_topic("gtower") == "dronedispatch/docks/gtower/command"
    assert dock_of_topic("dronedispatch/docks/gtower/state", "state") == "gtower"
    assert dock_of_topic("dronedispatch/docks/gtower/command", "state") is None
    assert dock_of_topic("dronedispatch/docks/a/b/state", "state") is None
    assert dock_of_topic("dronedispatch/docks//state", "state") is None
    c = parse_command(b'{"command": "open", "request_id": "r-7"}')
    assert c.command == "open" and c.request_id == "r-7"
    for bad in (b'{"command": "unlock", "request_id": "r"}', b'{"command": "open"}', b"open"):
        with pytest.raises(DockPayloadError):
            parse_command(bad)


def test_weather_spec() -> None:
    w = parse_weather_spec("wind=5,gust=8,rain=0.5,temp=-3", NOW)
    assert (w.wind_mean_ms, w.gust_ms, w.rain_mm_h, w.temperature_c, w.at) == (5, 8, 0.5, -3, NOW)
    w = parse_weather_spec("wind=6", NOW)
    assert w.gust_ms == 6 and w.temperature_c == 15
    for bad in ("wind=fast", "storm=1", "wind=9,gust=3", "rain=-1"):
        with pytest.raises(ValueError):
            parse_weather_spec(bad, NOW)
