"""Ready means ready: whether a docked drone can launch now, and if not why and when it will.

A drone the vehicle reports as ready (or charging) can launch only when

- its dock is healthy (no fault, door not in fault, the dock's state fresh) when the drone sits in it,
- its battery is at least its launch threshold (fleet file ``launch_threshold_pct``), and
- the weather at its dock and at the scene is within its airframe's limits (mean wind, gust,
  rain, temperature, from the fleet file).

Otherwise the answer names the first thing that holds it back, in that order, as a planning
:class:`~dronedispatch.domain.planning.Reason`; a charging drone's answer says when it will reach
the threshold: the dock's own estimate when it gives one, else the drone's charge rate.

A drone whose dock is not heard (no dock device, or none configured) is judged as before docks
were devices: on its vehicle's battery against the threshold, the weather unknown.

In flight, :func:`gust_check` compares the gust at the dock or the scene with the airframe's
``max_gust`` (an alert) and ``gust_hard_limit`` (the drone comes home). Pure: times come from the
caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from dronedispatch.domain.docks import DockState, DoorState, Weather
from dronedispatch.domain.fleet import DroneSpec, DroneState
from dronedispatch.domain.planning import Reason, ReasonCode

#: Korean names of the places and limits a weather reason names.
_WHERE_KO = {"dock": "도크", "scene": "현장"}
_LIMIT_KO = {"gust": "돌풍", "wind": "평균 풍속", "rain": "강우", "temperature": "기온"}


@dataclass(frozen=True, slots=True)
class Limits:
    """An airframe's launch and flight limits (fleet file; defaults as :class:`DroneSpec`'s)."""

    max_wind: float = 12.0
    max_gust: float = 15.0
    gust_hard_limit: float = 18.0
    max_rain_mm_h: float = 4.0
    min_temp_c: float = -10.0
    max_temp_c: float = 40.0
    launch_threshold_pct: float = 40.0
    charge_pct_per_min: float = 100.0 / 45.0

    @classmethod
    def of(cls, spec: DroneSpec) -> Limits:
        return cls(
            max_wind=spec.max_wind,
            max_gust=spec.max_gust,
            gust_hard_limit=spec.gust_hard_limit,
            max_rain_mm_h=spec.max_rain_mm_h,
            min_temp_c=spec.min_temp_c,
            max_temp_c=spec.max_temp_c,
            launch_threshold_pct=spec.launch_threshold_pct,
            charge_pct_per_min=spec.charge_pct_per_min,
        )


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether the drone can launch now; ``reason`` says why not, ``ready_in_min`` when it will."""

    ready: bool
    reason: Reason | None = None
    ready_in_min: float | None = None


READY = Readiness(True)

#: The states readiness judges; any other (in mission, offline, maintenance, …) is not ready anyway.
JUDGED = (DroneState.READY, DroneState.CHARGING)


def weather_breach(weather: Weather, limits: Limits, where: str) -> Reason | None:
    """The first launch limit ``weather`` breaks (gust, mean wind, rain, temperature), or None."""

    def reason(limit: str, value: float, limit_value: float, unit: str) -> Reason:
        return Reason(ReasonCode.WEATHER, {
            "where": where, "where_ko": _WHERE_KO.get(where, where), "limit": limit, "limit_ko": _LIMIT_KO[limit],
            "value": value, "limit_value": limit_value, "unit": unit,
        })  # fmt: skip

    if weather.gust_ms > limits.max_gust:
        return reason("gust", weather.gust_ms, limits.max_gust, "m/s")
    if weather.wind_mean_ms > limits.max_wind:
        return reason("wind", weather.wind_mean_ms, limits.max_wind, "m/s")
    if weather.rain_mm_h > limits.max_rain_mm_h:
        return reason("rain", weather.rain_mm_h, limits.max_rain_mm_h, "mm/h")
    if weather.temperature_c < limits.min_temp_c:
        return reason("temperature", weather.temperature_c, limits.min_temp_c, "°C")
    if weather.temperature_c > limits.max_temp_c:
        return reason("temperature", weather.temperature_c, limits.max_temp_c, "°C")
    return None


def assess(
    *,
    drone_id: str,
    state: DroneState,
    battery_pct: float | None,
    limits: Limits,
    dock: DockState | None,
    now: datetime,
    scene_weather: Weather | None = None,
) -> Readiness:
    """Can ``drone_id`` launch now from its dock (state ``dock``, None when not heard)?

    ``scene_weather`` is the station nearest the scene (None: unknown, not checked).
    """
    if state not in JUDGED:
        return Readiness(False, Reason(ReasonCode.NOT_READY, {"state": state.value}))
    if dock is not None:
        problem = dock.problem(now)
        # a drone landed away from its dock does not launch through it (a silent dock says nothing, though)
        if problem is not None and (dock.drone_present or not dock.fresh(now)):
            code = ReasonCode.DOOR_FAULT if dock.door is DoorState.FAULT else ReasonCode.DOCK_FAULT
            return Readiness(False, Reason(code, {"dock": dock.dock_id, "why": problem}))
        if dock.weather is not None:
            breach = weather_breach(dock.weather, limits, "dock")
            if breach is not None:
                return Readiness(False, breach)
    if scene_weather is not None:
        breach = weather_breach(scene_weather, limits, "scene")
        if breach is not None:
            return Readiness(False, breach)
    on_dock = dock is not None and dock.drone_present
    battery = battery_pct if battery_pct is not None else (dock.charge_pct if dock is not None and on_dock else None)
    if battery is None:
        return Readiness(False, Reason(ReasonCode.BATTERY_UNKNOWN))
    threshold = limits.launch_threshold_pct
    if battery >= threshold:
        return READY
    charging = dock.charging if dock is not None else True  # no dock device: a landed drone charges, as before
    if not charging:
        return Readiness(False, Reason(ReasonCode.LOW_BATTERY, {"battery": battery, "threshold": threshold}))
    minutes = ready_in_min(battery, limits, dock)
    shown = max(1, math.ceil(minutes))  # "ready in 0 min" would read as ready
    return Readiness(
        False,
        Reason(
            ReasonCode.CHARGING,
            {
                "drone": drone_id,
                "battery": battery,
                "threshold": threshold,
                "ready_in_min": shown,
                "ready_in_s": round(minutes * 60),
            },
        ),
        ready_in_min=minutes,
    )


def ready_in_min(battery_pct: float, limits: Limits, dock: DockState | None) -> float:
    """Minutes until a charging drone reaches its threshold: the dock's estimate, else the charge rate."""
    if dock is not None and dock.charging and dock.minutes_to_threshold is not None:
        return dock.minutes_to_threshold
    return max(0.0, limits.launch_threshold_pct - battery_pct) / limits.charge_pct_per_min


class GustLevel(StrEnum):
    OK = "ok"
    WARN = "warn"  # above max_gust: the pilot is told
    HARD = "hard"  # above gust_hard_limit: the drone comes home


@dataclass(frozen=True, slots=True)
class GustCheck:
    level: GustLevel
    gust_ms: float
    limit_ms: float | None
    where: str

    @property
    def text(self) -> str:
        if self.level is GustLevel.HARD:
            return (
                f"weather: gust {self.gust_ms:.3g} m/s at the {self.where} above the hard limit {self.limit_ms:.3g} m/s"
            )
        if self.level is GustLevel.WARN:
            return f"weather: gust {self.gust_ms:.3g} m/s at the {self.where} above the limit {self.limit_ms:.3g} m/s"
        return f"weather: gust {self.gust_ms:.3g} m/s at the {self.where} within limits"


def gust_check(weather: Weather, limits: Limits, where: str) -> GustCheck:
    """A flying drone against the gust at ``where`` (its dock or the scene)."""
    if weather.gust_ms > limits.gust_hard_limit:
        return GustCheck(GustLevel.HARD, weather.gust_ms, limits.gust_hard_limit, where)
    if weather.gust_ms > limits.max_gust:
        return GustCheck(GustLevel.WARN, weather.gust_ms, limits.max_gust, where)
    return GustCheck(GustLevel.OK, weather.gust_ms, None, where)


def worst(checks: list[GustCheck]) -> GustCheck | None:
    """The most severe of several checks (the highest gust among equals), or None for none."""
    order = {GustLevel.OK: 0, GustLevel.WARN: 1, GustLevel.HARD: 2}
    return max(checks, key=lambda c: (order[c.level], c.gust_ms), default=None)
