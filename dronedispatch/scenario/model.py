"""The scenario file: what a tester writes, as pydantic models (every field described).

A scenario is a day at the operations centre in miniature: a fleet at its docks, the city's
airspace and cameras, incidents arriving the way they would (webhook, MQTT/Frigate, CAP XML,
operator), faults injected into vehicles, operator and pilot actions, and the expectations the
run is judged by. Times are *simulated* seconds after the fleet is ready, written as durations
(``90s``, ``2m``, ``1m30s``, ``1h``) or plain numbers of seconds.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from dronedispatch.domain.fleet import Dock, DroneSpec
from dronedispatch.domain.incidents import Category

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m(?!s))?\s*(?:(\d+(?:\.\d+)?)s)?\s*$")


def parse_duration(value: Any) -> float:
    """``90``, ``90s``, ``1.5m``, ``1m30s``, ``2h`` → seconds; ValueError with the accepted forms otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 90s, 2m or 1m30s")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("expected a duration like 90s, 2m or 1m30s (not negative)")
        return float(value)
    if isinstance(value, str) and value.strip():
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            return parse_duration(number)
        m = _DURATION.match(value)
        if m and any(m.groups()):
            h, mi, s = (float(g) if g else 0.0 for g in m.groups())
            return h * 3600 + mi * 60 + s
    raise ValueError(f"expected a duration like 90s, 2m or 1m30s, got {value!r}")


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LatLon(_Strict):
    lat: float = Field(ge=-90, le=90, description="Latitude, degrees WGS84.")
    lon: float = Field(ge=-180, le=180, description="Longitude, degrees WGS84.")


class FleetSection(_Strict):
    file: Path | None = Field(default=None, description="Fleet file (docks, drones), relative to the scenario file.")
    vehicles: int | None = Field(default=None, ge=1, le=100, description="Use the first N drones (FleetConfig.sized).")
    docks: list[Dock] | None = Field(default=None, description="Inline docks (instead of a file).")
    drones: list[DroneSpec] | None = Field(default=None, description="Inline drones (instead of a file).")
    simulate_docks: bool = Field(
        default=False,
        description="Simulate each dock over MQTT (door, charging, weather; docs/docks-mqtt.md): a docked drone "
        "arms only once its door is open. Implied by weather and dock_* actions.",
    )
    weather: str | None = Field(
        default=None, description='Weather at every simulated dock from the start, e.g. "wind=5,gust=8,rain=0,temp=12".'
    )
    dock_door_interlock: bool = Field(
        default=True, description="With simulated docks: a docked drone refuses to arm while its dock door is not open."
    )

    @model_validator(mode="after")
    def _one_source(self) -> FleetSection:
        if self.file is not None and (self.docks or self.drones):
            raise ValueError("give either a fleet file or inline docks and drones, not both")
        if (self.docks is None) != (self.drones is None):
            raise ValueError("inline fleets need both docks and drones")
        return self


Via = Literal["webhook", "frigate", "mqtt", "cap", "operator"]


class IncidentEntry(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="Scenario-local name, used by actions and checks.")
    at: Duration = Field(description="When it arrives, after the start.")
    via: Via = Field(
        default="webhook",
        description="How it arrives: webhook (HTTP JSON), frigate (MQTT Frigate review), mqtt (JSON report on "
        "MQTT), cap (CAP 1.2 XML on MQTT), operator (POST /incidents as an operator).",
    )
    category: Category = Field(default=Category.OTHER, description="Incident category.")
    severity: int = Field(default=2, ge=1, le=4, description="1 minor … 4 extreme.")
    location: LatLon | None = Field(default=None, description="Where; or give camera.")
    camera: str | None = Field(default=None, description="Camera id (Frigate camera name) that saw it.")
    description: str = Field(default="", description="Free text.")
    approval_ref: str | None = Field(default=None, description="Airspace approval reference given with it (operator).")
    frigate_objects: list[str] = Field(
        default_factory=list, description="Frigate labels in the review (default from the category)."
    )
    payload: dict[str, Any] | str | None = Field(
        default=None, description="Send exactly this body instead of building one (JSON object or XML text)."
    )
    expect_rejected: bool = Field(default=False, description="The source is expected to refuse this report.")

    @model_validator(mode="after")
    def _place(self) -> IncidentEntry:
        if self.payload is None and self.location is None and self.camera is None:
            raise ValueError("give a location {lat, lon} or a camera")
        if self.via == "frigate" and self.payload is None and self.camera is None:
            raise ValueError("a Frigate report needs the camera that saw it")
        return self


FaultKind = Literal["packet_loss", "latency", "link_drop", "gps_loss", "battery", "motor_failure", "wind"]


class FaultEntry(_Strict):
    at: Duration = Field(description="When the fault starts.")
    drone: str = Field(description="Drone id, or 'all'.")
    kind: FaultKind = Field(description="What goes wrong.")
    value: float | None = Field(
        default=None,
        description="packet_loss: fraction 0..1; latency: seconds; battery: remaining percent; wind: speed m/s.",
    )
    direction: float = Field(default=0.0, description="wind: from this direction, degrees.")
    duration: Duration | None = Field(default=None, description="Undo the fault after this long (not battery/motor).")

    @model_validator(mode="after")
    def _value(self) -> FaultEntry:
        needs = {"packet_loss", "latency", "battery", "wind"}
        if self.kind in needs and self.value is None:
            raise ValueError(f"a {self.kind} fault needs a value")
        if self.kind == "packet_loss" and self.value is not None and not 0 <= self.value <= 1:
            raise ValueError("packet_loss value is a fraction between 0 and 1")
        if self.kind == "battery" and self.value is not None and not 0 <= self.value <= 100:
            raise ValueError("battery value is the remaining percent, 0..100")
        if self.kind in ("battery", "motor_failure") and self.duration is not None:
            raise ValueError(f"a {self.kind} fault cannot be undone; leave out duration")
        return self


class DispatchRule(_Strict):
    category: Category | None = Field(default=None, description="Only incidents of this category (any if unset).")
    min_severity: int = Field(default=1, ge=1, le=4, description="Only incidents at least this severe.")
    template: str | None = Field(default=None, description="Mission template to use.")
    params: dict[str, float] = Field(default_factory=dict, description="Template parameters to override.")
    delay: Duration = Field(default=0.0, description="Operator reaction time before dispatching.")


class OperatorSection(_Strict):
    dispatch: Literal["auto", "rules", "manual"] = Field(
        default="auto",
        description="auto: every new incident is dispatched; rules: only those a rule matches; manual: only actions.",
    )
    delay: Duration = Field(default=0.0, description="Reaction time before an automatic dispatch.")
    params: dict[str, float] = Field(default_factory=dict, description="Template parameters for every dispatch.")
    rules: list[DispatchRule] = Field(default_factory=list, description="Dispatch rules, first match wins.")
    retry_when_busy: bool = Field(
        default=True, description="When no drone is free, dispatch again as soon as one is ready."
    )


CAMERA_ACTIONS = ("camera_reboot", "camera_event")
DOCK_ACTIONS = ("weather", "dock_fault", "dock_repair")


class ActionEntry(_Strict):
    at: Duration = Field(description="When the operator or pilot acts (or, for camera_*, the camera does).")
    incident: str = Field(default="", description="Scenario incident id the action is about (not for camera_*).")
    do: Literal[
        "dispatch", "close", "pause", "resume", "rtl", "land", "abort", "camera_reboot", "camera_event",
        "weather", "dock_fault", "dock_repair",
    ] = Field(
        description="dispatch/close (operator), a pilot command on the incident's mission, or what a simulated "
        "camera does: camera_reboot (offline for `seconds`), camera_event (an ONVIF event `topic` starts or ends), "
        "or a simulated dock: weather (at `dock`, or every dock), dock_fault (its door fails with `reason`), "
        "dock_repair (the fault is cleared)."
    )  # fmt: skip
    dock: str | None = Field(default=None, description="weather (else every dock), dock_*: id of a fleet dock.")
    wind: float | None = Field(default=None, ge=0, le=100, description="weather: mean wind, m/s.")
    gust: float | None = Field(default=None, ge=0, le=150, description="weather: gust, m/s (default: the wind).")
    rain: float = Field(default=0.0, ge=0, le=500, description="weather: rain, mm/h.")
    temp: float = Field(default=15.0, ge=-80, le=70, description="weather: air temperature, °C.")
    reason: str | None = Field(default=None, description="dock_fault: why the door fails, as the dock reports it.")
    camera: str | None = Field(default=None, description="camera_*: id of a camera in the cameras file.")
    seconds: Duration | None = Field(default=None, description="camera_reboot: how long the camera is offline.")
    topic: str | None = Field(
        default=None, description="camera_event: motion, line_crossing, intrusion, tamper or an ONVIF topic."
    )
    active: bool = Field(default=True, description="camera_event: the event starts (true) or ends (false).")
    drone: str | None = Field(default=None, description="dispatch: this drone instead of the recommended one.")
    approval_ref: str | None = Field(default=None, description="dispatch: airspace approval reference.")
    template: str | None = Field(default=None, description="dispatch: mission template.")
    params: dict[str, float] = Field(default_factory=dict, description="dispatch: template parameters.")

    @model_validator(mode="after")
    def _needs(self) -> ActionEntry:
        if self.do in DOCK_ACTIONS:
            if self.do == "weather" and self.wind is None:
                raise ValueError("a weather action needs wind")
            if self.do == "weather" and self.gust is not None and self.gust < (self.wind or 0.0):
                raise ValueError("a weather action's gust is below its wind")
            if self.do != "weather" and self.dock is None:
                raise ValueError(f"a {self.do} action needs dock")
            if self.do == "dock_fault" and not self.reason:
                raise ValueError("a dock_fault action needs reason")
        elif self.do in CAMERA_ACTIONS:
            if self.camera is None:
                raise ValueError(f"a {self.do} action needs camera")
            if self.do == "camera_reboot" and self.seconds is None:
                raise ValueError("a camera_reboot action needs seconds")
            if self.do == "camera_event" and not self.topic:
                raise ValueError("a camera_event action needs topic")
        elif not self.incident:
            raise ValueError(f"a {self.do} action needs incident")
        return self

    @property
    def on_camera(self) -> bool:
        return self.do in CAMERA_ACTIONS

    @property
    def on_dock(self) -> bool:
        return self.do in DOCK_ACTIONS


class Expectation(_Strict):
    check: Literal[
        "on_scene",
        "dispatch_refused",
        "mission_state",
        "airspace",
        "battery_reserve",
        "failures_have_reasons",
        "nothing_lost",
        "alert",
        "video",
        "commands_accepted",
        "coverage_no_gap",
        "video_followed",
        "response_within_floor",
    ] = Field(description="What is checked.")
    incident: str | None = Field(default=None, description="Scenario incident id (on_scene, dispatch_refused, ...).")
    incidents: Literal["all"] | list[str] | None = Field(default=None, description="Several incidents, or 'all'.")
    within: Duration | None = Field(default=None, description="on_scene: at most this long after arrival.")
    drone: str | None = Field(default=None, description="on_scene: the drone that must be first ('nearest' works).")
    states: list[str] = Field(default_factory=list, description="mission_state: the acceptable final states.")
    reason_contains: str | None = Field(default=None, description="Text the reason (or alert message) contains.")
    code: str | None = Field(default=None, description="dispatch_refused: refusal code; alert: alert code.")
    min_pct: float = Field(default=15.0, ge=0, le=100, description="battery_reserve: lowest acceptable charge.")
    max_ratio: float = Field(
        default=1.15, gt=1, le=10,
        description="response_within_floor: largest dispatch-to-on-scene time as a multiple of the physical floor.",
    )  # fmt: skip
    overlap_s: float = Field(
        default=30.0, ge=0, description="coverage_no_gap: least time both drones are on scene at every hand-over."
    )
    drones: list[str] | None = Field(default=None, description="Limit the check to these drones.")
    name: str | None = Field(default=None, description="Shown in the verdict instead of a generated name.")

    @model_validator(mode="after")
    def _needs(self) -> Expectation:
        if self.check in ("on_scene", "mission_state") and self.incident is None and self.incidents is None:
            raise ValueError(f"a {self.check} check needs incident or incidents")
        if self.check == "dispatch_refused" and self.incident is None:
            raise ValueError("a dispatch_refused check needs incident")
        if self.check == "on_scene" and self.within is None:
            raise ValueError("an on_scene check needs within (a duration)")
        if self.check == "mission_state" and not self.states:
            raise ValueError("a mission_state check needs states")
        if self.check == "alert" and self.code is None and self.reason_contains is None:
            raise ValueError("an alert check needs code or reason_contains")
        return self


class Scenario(_Strict):
    name: str = Field(description="Short name, shown in reports.")
    description: str = Field(default="", description="What the scenario shows.")
    seed: int = Field(default=0, description="Seed for packet loss and faults.")
    speed_factor: float = Field(default=10.0, gt=0, le=200, description="Simulated time runs this many times faster.")
    duration: Duration = Field(description="Longest the run lasts (simulated); it ends sooner when all is done.")
    fleet: FleetSection = Field(default_factory=FleetSection, description="Docks and drones.")
    airspace: Path | None = Field(default=None, description="Airspace GeoJSON (default: the demo city's).")
    cameras: Path | None = Field(default=None, description="Cameras YAML (default: the demo city's).")
    operator: OperatorSection = Field(default_factory=OperatorSection, description="How incidents are dispatched.")
    incidents: list[IncidentEntry] = Field(default_factory=list, description="The timeline of incidents.")
    faults: list[FaultEntry] = Field(default_factory=list, description="Faults injected into vehicles.")
    actions: list[ActionEntry] = Field(default_factory=list, description="Operator and pilot actions at times.")
    expect: list[Expectation] = Field(min_length=1, description="What must hold for the run to pass.")

    @property
    def wants_video(self) -> bool:
        return any(e.check == "video" for e in self.expect)

    @property
    def uses_cameras(self) -> bool:
        """Simulated cameras (RTSP, ONVIF) are served only for scenarios that act on them."""
        return any(a.on_camera for a in self.actions)

    @property
    def uses_docks(self) -> bool:
        """Simulated docks (over an MQTT broker of the run's own) for scenarios that ask or act on them."""
        return self.fleet.simulate_docks or self.fleet.weather is not None or any(a.on_dock for a in self.actions)

    @property
    def uses_mqtt(self) -> bool:
        return any(i.via in ("frigate", "mqtt", "cap") for i in self.incidents)

    def incident(self, ref: str) -> IncidentEntry:
        return next(i for i in self.incidents if i.id == ref)
