"""Scenario files: every shipped one loads; malformed ones fail with an error naming the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from dronedispatch import cityfiles
from dronedispatch.scenario import ScenarioError, load_scenario
from dronedispatch.scenario.model import parse_duration

DATA = Path(__file__).parent / "data"
SHIPPED = sorted((cityfiles.SITL_DIR / "scenarios").glob("*.yaml"))


def test_the_six_scenarios_of_the_issue_are_shipped() -> None:
    names = {p.stem for p in SHIPPED}
    assert {
        "songdo-central-park",
        "surge",
        "link-loss",
        "battery-fault",
        "airport-control-zone",
        "packet-loss-5pct",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scenarios_load(path: Path) -> None:
    loaded = load_scenario(path)
    assert loaded.spec.name == path.stem
    assert loaded.spec.expect and loaded.fleet.drones


def test_surge_has_twenty_incidents_and_ten_drones_in_three_districts() -> None:
    loaded = load_scenario(cityfiles.SITL_DIR / "scenarios" / "surge.yaml")
    assert len(loaded.spec.incidents) == 20 and len(loaded.fleet.drones) == 10
    assert {d.dock for d in loaded.fleet.drones} == {"gtower", "songdo-south", "cheongna", "yeongjong"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(90, 90.0), ("90s", 90.0), ("2m", 120.0), ("1m30s", 90.0), ("1.5m", 90.0), ("1h", 3600.0), ("0", 0.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "", "-5", -5, True, "5 minutes", "m", "1ms"])
def test_bad_durations_say_what_is_expected(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("name", "line", "text"),
    [
        ("bad-duration", 6, "incidents[1].at: expected a duration like 90s, 2m or 1m30s, got 'soon'"),
        ("bad-field", 6, "faults[0].durration: unknown field"),
        ("bad-yaml", 5, "not valid YAML"),
        ("bad-reference", 6, "faults[0].drone: no drone 'dd-42' in the fleet"),
    ],
)
def test_malformed_files_name_the_line(name: str, line: int, text: str) -> None:
    path = DATA / f"{name}.yaml"
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    first = info.value.problems[0]
    assert first.startswith(f"{path}:{line}: "), first
    assert text in first


def test_every_problem_is_reported_with_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(
        "name: two\n"
        "duration: 5m\n"
        "speed_factor: -1\n"
        "incidents:\n"
        "  - {id: a, at: 5s}\n"
        "expect:\n"
        "  - {check: on_scene, incident: a}\n"
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    text = str(info.value)
    assert f"{path}:3: speed_factor: " in text
    assert f"{path}:5: incidents[0]: give a location" in text
    assert f"{path}:7: expect[0]: an on_scene check needs within" in text


def test_unknown_references_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "refs.yaml"
    path.write_text(
        "name: refs\nduration: 5m\nairspace: nowhere.geojson\n"
        "incidents:\n  - {id: a, at: 5s, location: {lat: 37.4, lon: 126.6}}\n"
        "expect:\n  - {check: nothing_lost}\n"
    )
    with pytest.raises(ScenarioError, match=r"refs.yaml:3: airspace: no such file"):
        load_scenario(path)
    path.write_text(
        "name: refs\nduration: 5m\n"
        "incidents:\n  - {id: a, at: 5s, location: {lat: 37.4, lon: 126.6}}\n"
        "actions:\n  - {at: 9s, incident: b, do: rtl}\n"
        "expect:\n  - {check: nothing_lost}\n"
    )
    with pytest.raises(ScenarioError, match=r"refs.yaml:6: actions\[0\].incident: no incident 'b' in the timeline"):
        load_scenario(path)


def test_empty_and_non_mapping_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ScenarioError, match=r"empty\.yaml:1: the file is empty"):
        load_scenario(empty)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ScenarioError, match=r"list\.yaml:1: a scenario is a mapping"):
        load_scenario(listy)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")
