"""Scenario actions on the simulated docks: weather and dock_fault (and dock_repair), through the service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dronedispatch.domain.docks import DoorState
from dronedispatch.runtime import Runtime
from dronedispatch.scenario import runner
from dronedispatch.scenario.loader import ScenarioError, load_scenario
from dronedispatch.scenario.runner import ScenarioRun

SCENARIO = """name: dock-actions
speed_factor: 10
duration: 30s
fleet: {vehicles: 2, weather: "wind=2,gust=3,rain=0,temp=18"}
actions:
  - {at: 5s, do: weather, wind: 9, gust: 14.5, rain: 2, temp: 4}
  - {at: 6s, do: weather, dock: songdo-south, wind: 3}
  - {at: 7s, do: dock_fault, dock: gtower, reason: door jammed}
  - {at: 8s, do: dock_fault, dock: songdo-south, reason: motor overcurrent}
  - {at: 9s, do: dock_repair, dock: songdo-south}
  - {at: 12s, do: weather, dock: cheongna, wind: 1}
expect:
  - {check: nothing_lost}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "docks.yaml"
    path.write_text(text)
    return path


def test_dock_actions_are_checked_with_their_lines(tmp_path: Path) -> None:
    spec = load_scenario(_write(tmp_path, SCENARIO)).spec
    assert spec.uses_docks and not spec.uses_cameras
    assert [a.do for a in spec.actions] == ["weather", "weather", "dock_fault", "dock_fault", "dock_repair", "weather"]
    assert spec.actions[0].dock is None and spec.actions[0].gust == 14.5 and spec.actions[1].temp == 15.0
    for bad, why in [
        ("dock: gtower, reason: door jammed", r"docks.yaml:8: actions\[2\]: a dock_fault action needs reason"),
        ("dock: gtower, reason: door jammed", r"docks.yaml:8: actions\[2\].dock: no dock 'nowhere'"),
        ("wind: 9, gust: 14.5", r"docks.yaml:6: actions\[0\]: a weather action's gust is below its wind"),
        ("wind=2,gust=3", r"docks.yaml:4: fleet.weather: .*gust_ms is below wind_mean_ms"),
    ]:
        replacement = {
            "needs reason": "dock: gtower",
            "no dock": "dock: nowhere, reason: door jammed",
            "below its wind": "wind: 9, gust: 4",
            "fleet.weather": "wind=5,gust=3",
        }
        new = next(v for k, v in replacement.items() if k in why)
        with pytest.raises(ScenarioError, match=why):
            load_scenario(_write(tmp_path, SCENARIO.replace(bad, new)))
    plain = load_scenario(
        _write(
            tmp_path,
            SCENARIO.split("actions:")[0].replace(', weather: "wind=2,gust=3,rain=0,temp=18"', "")
            + "expect:\n  - {check: nothing_lost}\n",
        )
    )
    assert not plain.spec.uses_docks and not plain.spec.uses_mqtt  # no broker, no docks: as before


async def test_a_run_changes_the_weather_and_breaks_a_door(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtimes: list[Runtime] = []

    class Kept(Runtime):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            runtimes.append(self)

    monkeypatch.setattr(runner, "Runtime", Kept)
    run = ScenarioRun(load_scenario(_write(tmp_path, SCENARIO)))
    result = await run.run()
    assert result.error is None, result.error
    texts = [text for _, kind, text in result.recording.events if kind == "dock"]
    assert texts == [
        "weather at every dock: wind 9 m/s, gust 14.5 m/s, rain 2 mm/h, 4 °C",
        "weather at songdo-south: wind 3 m/s, gust 3 m/s, rain 0 mm/h, 15 °C",
        "gtower: door fault: door jammed",
        "songdo-south: door fault: motor overcurrent",
        "songdo-south: fault cleared",
        "weather at cheongna: wind 1 m/s, gust 1 m/s, rain 0 mm/h, 15 °C",
    ]
    # the service heard it all from the simulated docks, over the run's own broker
    docks = runtimes[0].docks
    gtower, south = docks.state("gtower"), docks.state("songdo-south")
    assert gtower is not None and gtower.door is DoorState.FAULT and gtower.fault == "door jammed"
    assert gtower.weather is not None and (gtower.weather.gust_ms, gtower.weather.temperature_c) == (14.5, 4.0)
    assert gtower.drone_present  # dd-01 sits in it
    assert run.docks is not None and run.docks.interlock  # on unless the fleet section turns it off
    assert south is not None and south.fault is None and south.door is DoorState.CLOSED
    assert south.weather is not None and south.weather.wind_mean_ms == 3.0
