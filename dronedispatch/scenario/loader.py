"""Read a scenario file, keeping line numbers so every error names the line it is about.

The YAML is composed into nodes (which carry their start marks) and turned into plain data while
a map from each value's path (``incidents[3].at``) to its line is recorded. Validation errors
from the pydantic models are then reported as ``scenario.yaml:12: incidents[3].at: expected a
duration like 90s, 2m or 1m30s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dronedispatch import cityfiles
from dronedispatch.domain.assets import AssetFileError, load_assets
from dronedispatch.domain.docks import parse_weather_spec
from dronedispatch.domain.fleet import FleetConfig
from dronedispatch.scenario.model import Scenario

Path_ = tuple[str | int, ...]


class ScenarioError(ValueError):
    """A scenario file cannot be used; ``str()`` is one line per problem, each naming file and line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _construct(node: yaml.Node, path: Path_, lines: dict[Path_, int], loader: yaml.SafeLoader) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                raise ScenarioError([f"line {key_node.start_mark.line + 1}: a key must be a plain value"])
            lines.setdefault((*path, key), key_node.start_mark.line + 1)
            out[key] = _construct(value_node, (*path, key), lines, loader)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(child, (*path, i), lines, loader) for i, child in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, name: str) -> tuple[Any, dict[Path_, int]]:
    """YAML text → (data, path → line). Syntax errors become a ScenarioError naming the line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ScenarioError([f"{name}:1: the file is empty"])
        lines: dict[Path_, int] = {}
        data = _construct(node, (), lines, loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        started = ""
        if exc.context and exc.context_mark is not None and exc.context_mark.line + 1 != line:
            started = f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
        raise ScenarioError([f"{name}:{line}: not valid YAML: {exc.problem or exc.context}{started}"]) from None
    except ScenarioError as exc:
        problems = [p if p.startswith(name) else f"{name}:{p.removeprefix('line ')}" for p in exc.problems]
        raise ScenarioError(problems) from None
    finally:
        loader.dispose()
    return data, lines


def _line_of(loc: Path_, lines: dict[Path_, int]) -> int:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return 1


def _message(err: Any) -> str:
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if err["type"] == "extra_forbidden":
        return "unknown field (check the spelling)"
    if err["type"] == "missing":
        return "required field is missing"
    return msg


def _clean_loc(loc: tuple[Any, ...]) -> Path_:
    # discriminated/union branches and validator tags are not part of the file's structure
    return tuple(p for p in loc if isinstance(p, int) or not str(p).startswith(("function-", "union[", "json-or")))


def validate(data: Any, lines: dict[Path_, int], name: str) -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError([f"{name}:1: a scenario is a mapping (name:, duration:, incidents:, expect:, ...)"])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = []
        seen: set[str] = set()
        for err in exc.errors():
            loc = _clean_loc(err["loc"])
            text = f"{name}:{_line_of(loc, lines)}: {dotted(loc)}: {_message(err)}"
            if text not in seen:
                seen.add(text)
                problems.append(text)
        raise ScenarioError(problems) from None


def _check_references(spec: Scenario, lines: dict[Path_, int], name: str) -> None:
    """Incident ids unique; actions and checks name incidents that exist. Each problem with its line."""
    problems = []
    seen: set[str] = set()
    for i, inc in enumerate(spec.incidents):
        if inc.id in seen:
            problems.append(
                f"{name}:{_line_of(('incidents', i, 'id'), lines)}: incidents[{i}].id: {inc.id!r} is used twice"
            )
        seen.add(inc.id)
    for i, action in enumerate(spec.actions):
        if action.incident and action.incident not in seen:
            problems.append(
                f"{name}:{_line_of(('actions', i, 'incident'), lines)}: actions[{i}].incident: "
                f"no incident {action.incident!r} in the timeline"
            )
    for i, e in enumerate(spec.expect):
        key = "incident" if e.incident else "incidents"
        named = [e.incident] if e.incident else (e.incidents if isinstance(e.incidents, list) else [])
        for ref in named:
            if ref not in seen:
                problems.append(
                    f"{name}:{_line_of(('expect', i, key), lines)}: expect[{i}].{key}: "
                    f"no incident {ref!r} in the timeline"
                )
    if problems:
        raise ScenarioError(problems)


@dataclass
class LoadedScenario:
    """A validated scenario with its files resolved and loaded."""

    spec: Scenario
    path: Path
    fleet: FleetConfig
    airspace_path: Path
    cameras_path: Path


def load_scenario(path: Path | str) -> LoadedScenario:
    """Read, validate and resolve a scenario file; :class:`ScenarioError` on any problem."""
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([f"{name}: cannot read: {exc.strerror}"]) from None
    data, lines = parse_yaml(text, name)
    spec = validate(data, lines, name)
    base = path.resolve().parent

    def resolve(p: Path | None, default: Path, key: Path_) -> Path:
        if p is None:
            return default
        full = p if p.is_absolute() else base / p
        if not full.is_file():
            raise ScenarioError([f"{name}:{_line_of(key, lines)}: {dotted(key)}: no such file: {full}"])
        return full

    airspace = resolve(spec.airspace, cityfiles.DEFAULT_AIRSPACE, ("airspace",))
    cameras = resolve(spec.cameras, cityfiles.DEFAULT_CAMERAS, ("cameras",))
    f = spec.fleet
    if f.docks is not None and f.drones is not None:
        try:
            fleet = FleetConfig(city=spec.name, docks=f.docks, drones=f.drones)
        except ValueError as exc:
            raise ScenarioError([f"{name}:{_line_of(('fleet',), lines)}: fleet: {exc}"]) from None
    else:
        fleet_file = resolve(f.file, cityfiles.DEFAULT_FLEET, ("fleet", "file"))
        try:
            fleet = cityfiles.load_fleet(fleet_file)
        except cityfiles.CityFileError as exc:
            raise ScenarioError([f"{name}:{_line_of(('fleet', 'file'), lines)}: fleet.file: {exc}"]) from None
    if f.vehicles is not None:
        fleet = fleet.sized(f.vehicles)
    _check_references(spec, lines, name)
    if spec.uses_cameras:
        try:
            assets = load_assets(cameras)
        except AssetFileError as exc:
            raise ScenarioError([f"{name}:{_line_of(('cameras',), lines)}: cameras: {exc}"]) from None
        names = [c.id for c in assets.cameras if c.is_camera]
        for i, action in enumerate(spec.actions):
            if action.camera is not None and action.camera not in names:
                line = _line_of(("actions", i, "camera"), lines)
                raise ScenarioError([f"{name}:{line}: actions[{i}].camera: no camera {action.camera!r} in {cameras}"])
    ids = {d.id for d in fleet.drones}
    for i, fault in enumerate(spec.faults):
        if fault.drone != "all" and fault.drone not in ids:
            line = _line_of(("faults", i, "drone"), lines)
            raise ScenarioError(
                [f"{name}:{line}: faults[{i}].drone: no drone {fault.drone!r} in the fleet ({', '.join(sorted(ids))})"]
            )
    dock_ids = {d.id for d in fleet.docks}
    for i, action in enumerate(spec.actions):
        if action.dock is not None and action.dock not in dock_ids:
            line = _line_of(("actions", i, "dock"), lines)
            known = ", ".join(sorted(dock_ids))
            raise ScenarioError([f"{name}:{line}: actions[{i}].dock: no dock {action.dock!r} in the fleet ({known})"])
    if f.weather is not None:
        try:
            parse_weather_spec(f.weather, datetime.now(UTC))
        except ValueError as exc:
            raise ScenarioError([f"{name}:{_line_of(('fleet', 'weather'), lines)}: fleet.weather: {exc}"]) from None
    for i, action in enumerate(spec.actions):
        if action.drone is not None and action.drone not in ids:
            line = _line_of(("actions", i, "drone"), lines)
            raise ScenarioError([f"{name}:{line}: actions[{i}].drone: no drone {action.drone!r} in the fleet"])
    return LoadedScenario(spec=spec, path=path, fleet=fleet, airspace_path=airspace, cameras_path=cameras)
