"""Mission templates: YAML files checked against a JSON schema, compiled into mission items.

A template (``mission_templates/<name>.yaml``, schema ``mission_templates/schema.json``) names a
flight *pattern*, the incident categories it suits, and its parameters with defaults, limits and
per-category defaults. :func:`compile_mission` turns a template, parameters and the geometry of
one dispatch (dock, target, route round no-fly zones, optional incident area) into mission items.

Every compiled mission has the same shape, so the mission state machine can follow it::

    0            NAV_TAKEOFF at the dock, to the departure height (relative to home)
    [1]          DO_CHANGE_SPEED (when the template sets a speed)
    …            NAV_WAYPOINT at each interior vertex of the route, climbing
    k            NAV_WAYPOINT at the pattern's entry point, at the template's altitude   (arrival)
    k+1          DO_SET_ROI_LOCATION target, or DO_SET_ROI_NONE     ← on_scene_seq
    …            the pattern (loiter, ring + DO_JUMP, sweep tracks)
    r            NAV_WAYPOINT at each interior vertex of the way back  ← return_seq (absent when
    …            NAV_RETURN_TO_LAUNCH                                  holding until the pilot returns it)

MISSION_CURRENT names the item being flown *to*; the item after the arrival waypoint becomes
current only once the vehicle reached the scene, so ``mission_seq >= on_scene_seq`` means "on
scene" without geometry.

Orbit: PX4 runs orbit only as a mode (MAV_CMD_DO_ORBIT) and multicopters ignore a loiter item's
radius, so an orbit is a ring of NAV_WAYPOINTs plus DO_JUMP back to the ring's first point
(repeat count from the time on scene), with DO_SET_ROI_LOCATION on the centre.
Altitudes are metres above home (Frame.GLOBAL_RELATIVE_ALT_INT), never above :data:`CEILING_M`.

Climb while flying (:mod:`dronedispatch.domain.launch`): the take-off goes only to the departure
height (the obstacle height round the dock: the airspace's ``obstacle_height_m``, default 25 m, never
above the template's altitude or the ceiling); the way out then climbs to the template's altitude,
each route vertex at the height a drone climbing at its maximum rate while cruising reaches there,
so PX4 flies each leg as one climbing straight line at full horizontal speed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

import jsonschema
import yaml

from dronedispatch.domain import launch, patterns
from dronedispatch.domain.geo import LatLon, bearing_deg, distance_m, path_length_m
from dronedispatch.domain.incidents import Category
from dronedispatch.domain.mission_items import (
    Cmd,
    Frame,
    MissionItem,
    change_speed,
    loiter_time,
    loiter_unlimited,
    return_to_launch,
    roi_location,
    takeoff,
    waypoint,
)

CEILING_M = 150.0
DEFAULT_TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "mission_templates"
SCHEMA_FILE = "schema.json"
DEFAULT_SPEED_M_S = 10.0  # assumed ground speed for time estimates when none is given
DEFAULT_CLIMB_M_S = 3.0  # maximum climb rate when none is given (PX4's MPC_Z_VEL_MAX_UP default)


class TemplateError(ValueError):
    """A template file or a parameter is wrong; the message names the file or template and field."""


@dataclass(frozen=True, slots=True)
class ParamSpec:
    default: float
    minimum: float
    maximum: float
    unit: str = ""
    description: str = ""


@dataclass(frozen=True)
class MissionTemplate:
    name: str
    title_en: str
    title_ko: str
    pattern: str
    categories: tuple[Category, ...]
    params: Mapping[str, ParamSpec]
    category_defaults: Mapping[Category, Mapping[str, float]] = field(default_factory=dict)
    default_for: tuple[Category, ...] = ()
    description: str = ""
    source: str = ""

    def defaults(self, category: Category | str | None = None) -> dict[str, float]:
        values = {k: p.default for k, p in self.params.items()}
        if category is not None:
            values.update(self.category_defaults.get(Category(category), {}))
        return values

    def as_dict(self) -> dict[str, Any]:
        """For ``GET /mission-templates``."""
        return {
            "name": self.name,
            "title": {"en": self.title_en, "ko": self.title_ko},
            "description": self.description,
            "pattern": self.pattern,
            "categories": [c.value for c in self.categories],
            "default_for": [c.value for c in self.default_for],
            "params": {
                k: {"default": p.default, "minimum": p.minimum, "maximum": p.maximum, "unit": p.unit,
                    "description": p.description}
                for k, p in self.params.items()
            },
            "category_defaults": {c.value: dict(v) for c, v in self.category_defaults.items()},
        }


@dataclass(frozen=True)
class CompiledMission:
    items: tuple[MissionItem, ...]
    on_scene_seq: int
    return_seq: int | None
    template: str
    params: Mapping[str, float]
    pattern_points: tuple[LatLon, ...]
    scene_time_s: float  # time spent on the pattern (hover time, laps, sweep length / speed)
    path_length_m: float  # dock → scene → pattern (→ dock when the mission returns)

    @property
    def max_alt_m(self) -> float:
        return max((i.alt for i in self.items if i.is_positional), default=0.0)


# --- loading ----------------------------------------------------------------------------------


@cache
def _schema(directory: Path) -> dict[str, Any]:
    path = directory / SCHEMA_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TemplateError(f"{path}: cannot load the template schema: {exc}") from exc


def parse_template(data: Any, *, source: str, schema: Mapping[str, Any]) -> MissionTemplate:
    """Validate one template's data against the schema and the rules the schema cannot say."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'.'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}" for e in errors]
        raise TemplateError(f"{source}: " + "; ".join(lines))
    name = data["name"]
    if source.endswith(".yaml") and Path(source).stem != name:
        raise TemplateError(f"{source}: name: {name!r} must equal the file name {Path(source).stem!r}")
    params = {
        k: ParamSpec(float(v["default"]), float(v["minimum"]), float(v["maximum"]), v.get("unit", ""),
                     v.get("description", ""))
        for k, v in data["params"].items()
    }
    for k, p in params.items():
        if not p.minimum <= p.default <= p.maximum:
            raise TemplateError(f"{source}: params.{k}: default {p.default} is outside [{p.minimum}, {p.maximum}]")
    if params["altitude_m"].maximum > CEILING_M:
        raise TemplateError(f"{source}: params.altitude_m.maximum: above the {CEILING_M:.0f} m ceiling")
    missing = [k for k in _PATTERN_PARAMS[data["pattern"]] if k not in params]
    if missing:
        raise TemplateError(f"{source}: params: pattern {data['pattern']!r} needs {', '.join(missing)}")
    cat_defaults: dict[Category, dict[str, float]] = {}
    for cat, values in (data.get("category_defaults") or {}).items():
        for k, v in values.items():
            if k not in params:
                raise TemplateError(f"{source}: category_defaults.{cat}.{k}: no such parameter")
            if not params[k].minimum <= v <= params[k].maximum:
                raise TemplateError(f"{source}: category_defaults.{cat}.{k}: {v} is outside "
                                    f"[{params[k].minimum}, {params[k].maximum}]")
        cat_defaults[Category(cat)] = {k: float(v) for k, v in values.items()}
    categories = tuple(Category(c) for c in data["categories"])
    default_for = tuple(Category(c) for c in data.get("default_for", []))
    for c in default_for:
        if c not in categories:
            raise TemplateError(f"{source}: default_for: {c.value!r} is not among the template's categories")
    return MissionTemplate(
        name=name, title_en=data["title"]["en"], title_ko=data["title"]["ko"], pattern=data["pattern"],
        categories=categories, params=params, category_defaults=cat_defaults, default_for=default_for,
        description=data.get("description", ""), source=source,
    )


def load_templates(directory: Path | str = DEFAULT_TEMPLATES_DIR) -> dict[str, MissionTemplate]:
    """Every ``*.yaml`` template in ``directory``, validated; the first bad file raises TemplateError."""
    directory = Path(directory)
    schema = _schema(directory) if (directory / SCHEMA_FILE).exists() else _schema(DEFAULT_TEMPLATES_DIR)
    out: dict[str, MissionTemplate] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise TemplateError(f"{path}: not readable YAML: {exc}") from exc
        t = parse_template(data, source=str(path), schema=schema)
        if t.name in out:
            raise TemplateError(f"{path}: name: {t.name!r} already defined in {out[t.name].source}")
        out[t.name] = t
    if not out:
        raise TemplateError(f"{directory}: no mission templates (*.yaml) found")
    return out


def template_for(category: Category | str, templates: Mapping[str, MissionTemplate]) -> MissionTemplate:
    """The template proposed first for ``category``."""
    category = Category(category)
    for t in templates.values():
        if category in t.default_for:
            return t
    for name in ("hover_roi", "overwatch"):
        if name in templates:
            return templates[name]
    raise TemplateError(f"no template for category {category.value!r}")


def resolve_params(
    template: MissionTemplate, category: Category | str | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, float]:
    """Defaults ← category defaults ← overrides, each checked against the template's limits."""
    values = template.defaults(category)
    for k, v in (overrides or {}).items():
        spec = template.params.get(k)
        if spec is None:
            raise TemplateError(f"template {template.name!r}: unknown parameter {k!r} "
                                f"(known: {', '.join(sorted(template.params))})")
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise TemplateError(f"template {template.name!r}: parameter {k!r} must be a number, got {v!r}")
        if not spec.minimum <= v <= spec.maximum:
            raise TemplateError(f"template {template.name!r}: parameter {k!r} = {v} is outside "
                                f"[{spec.minimum}, {spec.maximum}]{' ' + spec.unit if spec.unit else ''}")
        values[k] = float(v)
    return values


# --- compiling --------------------------------------------------------------------------------

_ROI_NONE = MissionItem(Cmd.DO_SET_ROI_NONE, frame=Frame.MISSION, param4=0.0)

_PATTERN_PARAMS: dict[str, tuple[str, ...]] = {
    "hover_roi": ("altitude_m", "offset_m", "time_on_scene_s"),
    "orbit": ("altitude_m", "radius_m", "ring_points", "time_on_scene_s"),
    "expanding_square": ("altitude_m", "spacing_m", "radius_m", "heading_deg"),
    "lawnmower": ("altitude_m", "spacing_m", "radius_m", "heading_deg"),
    "corridor": ("altitude_m", "offset_m", "length_m", "heading_deg"),
    "perimeter": ("altitude_m", "radius_m", "offset_m", "ring_points", "time_on_scene_s"),
}


def area_points(area: Mapping[str, Any] | Sequence[LatLon] | None) -> list[LatLon] | None:
    """A GeoJSON Polygon/LineString (lon, lat order) or a list of (lat, lon) → (lat, lon) points."""
    if area is None:
        return None
    if isinstance(area, Mapping):
        geom = area.get("geometry", area)
        kind, coords = geom.get("type"), geom.get("coordinates")
        if kind == "Polygon":
            ring = coords[0]
            pts = [(float(c[1]), float(c[0])) for c in ring]
            return pts[:-1] if len(pts) > 1 and pts[0] == pts[-1] else pts
        if kind == "LineString":
            return [(float(c[1]), float(c[0])) for c in coords]
        raise TemplateError(f"area: unsupported GeoJSON geometry {kind!r} (Polygon or LineString)")
    return [(float(p[0]), float(p[1])) for p in area]


def compile_mission(
    template: MissionTemplate,
    params: Mapping[str, Any] | None = None,
    *,
    dock: tuple[float, float, float],
    target: LatLon,
    route: Sequence[LatLon] | None = None,
    return_route: Sequence[LatLon] | None = None,
    area: Mapping[str, Any] | Sequence[LatLon] | None = None,
    category: Category | str | None = None,
    cruise_speed: float = DEFAULT_SPEED_M_S,
    airspace: ZoneAvoider | None = None,
    climb_rate_m_s: float = DEFAULT_CLIMB_M_S,
    obstacle_height_m: float | None = None,
    airborne: bool = False,
) -> CompiledMission:
    """Mission items for one dispatch.

    ``route`` is dock → … → target (from :meth:`Airspace.route`); ``return_route`` is the way
    back, scene → … → dock (default: ``route`` reversed); only their interior points become
    waypoints. ``area`` is the incident's polygon (search, perimeter) or line (corridor), if any.

    With ``airspace``, the pattern is made to fit it: pattern points inside prohibited zones are
    dropped, legs between the rest go round the zones, and the way out (dock → pattern entry)
    and back (pattern end → dock) are routed to the pattern's actual ends. Raises ``NoRoute``
    when no way exists, TemplateError when the whole pattern lies in prohibited zones.

    The take-off reaches the departure height (``obstacle_height_m``, else the airspace's, else
    :data:`~dronedispatch.domain.launch.DEFAULT_DEPARTURE_ALT_M`) and the way out climbs from there at
    ``climb_rate_m_s``; an ``airborne`` drone (pre-empted in flight) climbs at once to the altitude.
    """
    p = resolve_params(template, category, params)
    alt = p["altitude_m"]
    if alt > CEILING_M:
        raise TemplateError(f"template {template.name!r}: altitude {alt} m is above the {CEILING_M:.0f} m ceiling")
    dock_ll = (dock[0], dock[1])
    path = list(route) if route else [dock_ll, target]
    approach = path[-2] if len(path) >= 2 else dock_ll
    speed = p.get("speed_m_s") or cruise_speed
    pts_area = area_points(area)

    pattern, roi, hold_s, laps = _pattern(template.pattern, p, target, approach, pts_area, speed)
    if airspace is not None:
        pattern = _fit_to_airspace(pattern, airspace, closed=laps > 1, name=template.name)
        path = airspace.route(dock_ll, pattern[0])
        if return_route is None:
            return_route = airspace.route(pattern[-1], dock_ll)
    obstacle = obstacle_height_m if obstacle_height_m is not None else getattr(airspace, "obstacle_height_m", None)
    ceiling = getattr(airspace, "ceiling_m", None)
    dep = alt if airborne else launch.departure_alt(alt, obstacle, ceiling)
    way_out = [*path[:-1], pattern[0]]
    climb = launch.climb_profile(way_out, departure_alt_m=dep, transit_alt_m=alt, climb_rate_m_s=climb_rate_m_s,
                                 cruise_speed_m_s=speed)
    items: list[MissionItem] = [takeoff(dock[0], dock[1], dep)]
    if p.get("speed_m_s"):
        items.append(change_speed(p["speed_m_s"]))
    items += [waypoint(lat, lon, a) for (lat, lon), a in zip(path[1:-1], climb[1:-1], strict=True)]

    items.append(waypoint(*pattern[0], alt))  # arrival
    on_scene_seq = len(items)
    items.append(roi_location(*roi, 0.0) if roi else _ROI_NONE)
    if template.pattern == "hover_roi":
        items.append(loiter_time(*pattern[0], alt, hold_s) if hold_s > 0 else loiter_unlimited(*pattern[0], alt))
    else:
        first = len(items)
        items += [waypoint(lat, lon, alt) for lat, lon in pattern[1:]]
        if laps > 1:
            items.append(waypoint(*pattern[0], alt))  # close the ring
            items.append(MissionItem(Cmd.DO_JUMP, frame=Frame.MISSION, param1=first, param2=laps - 1, param4=0))
    loop = path_length_m(pattern) + (distance_m(*pattern[-1], *pattern[0]) if laps > 1 else 0.0)
    scene_s = hold_s if template.pattern == "hover_roi" else loop * laps / speed
    length = path_length_m([*path[:-1], pattern[0]]) + loop * laps
    return_seq: int | None = None
    if not (template.pattern == "hover_roi" and hold_s <= 0):
        if roi:
            items.append(_ROI_NONE)
        return_seq = len(items)
        # RTL flies straight home: retrace the route's bends first so the way back avoids the same zones
        back = list(return_route) if return_route is not None else path[::-1]
        items += [waypoint(lat, lon, alt) for lat, lon in back[1:-1]]
        items.append(return_to_launch())
        length += path_length_m([pattern[-1], *back[1:-1], dock_ll])
    for it in items:
        if it.is_positional and it.alt > CEILING_M:  # pragma: no cover - guarded by resolve_params
            raise TemplateError(f"template {template.name!r}: item above the {CEILING_M:.0f} m ceiling")
    return CompiledMission(
        items=tuple(items), on_scene_seq=on_scene_seq, return_seq=return_seq, template=template.name,
        params=p, pattern_points=tuple(pattern), scene_time_s=scene_s, path_length_m=length,
    )


def _pattern(
    kind: str, p: Mapping[str, float], target: LatLon, approach: LatLon, area: list[LatLon] | None, speed: float
) -> tuple[list[LatLon], LatLon | None, float, int]:
    """(points, roi or None, hover seconds, laps) for a pattern; points[0] is the entry."""
    if kind == "hover_roi":
        return [patterns.standoff(target, approach, p["offset_m"])], target, p["time_on_scene_s"], 1
    if kind in ("orbit", "perimeter"):
        if kind == "perimeter" and area and len(area) >= 3:
            pts = patterns.rotate_to_nearest(patterns.perimeter(area, p["offset_m"]), approach)
            centre = _centroid(area)
        else:
            radius = p["radius_m"] + (p["offset_m"] if kind == "perimeter" else 0.0)
            start = _bearing_or_north(target, approach)
            pts = patterns.ring(target, radius, int(p["ring_points"]), start_bearing_deg=start)
            centre = target
        lap = path_length_m([*pts, pts[0]])
        laps = max(1, round(p["time_on_scene_s"] * speed / lap))
        return pts, centre, 0.0, laps
    if kind == "expanding_square":
        centre = _centroid(area) if area else target
        pts = patterns.expanding_square(centre, p["spacing_m"], p["radius_m"], heading_deg=p["heading_deg"])
        return pts, None, 0.0, 1
    if kind == "lawnmower":
        poly = area if area and len(area) >= 3 else patterns.square_around(target, p["radius_m"])
        pts = patterns.nearest_end_first(patterns.lawnmower(poly, p["spacing_m"], heading_deg=p["heading_deg"]),
                                         approach)
        return pts, None, 0.0, 1
    if kind == "corridor":
        line = area if area and len(area) >= 2 else patterns.straight_line(target, p["length_m"], p["heading_deg"])
        line = patterns.nearest_end_first(list(line), approach)
        return patterns.corridor(line, p["offset_m"]), None, 0.0, 1
    raise TemplateError(f"unknown pattern {kind!r}")


class ZoneAvoider(Protocol):
    """What fitting a pattern needs from the airspace (:class:`~dronedispatch.domain.airspace.Airspace`)."""

    def route(self, start: LatLon, goal: LatLon) -> list[LatLon]: ...

    def prohibited_at(self, lat: float, lon: float) -> Any: ...


def _fit_to_airspace(points: list[LatLon], airspace: ZoneAvoider, *, closed: bool, name: str) -> list[LatLon]:
    """``points`` without those in prohibited zones, with detours round zones between the rest."""
    kept = [p for p in points if airspace.prohibited_at(*p) is None]
    if not kept:
        raise TemplateError(f"template {name!r}: the whole pattern lies inside prohibited zones")
    out = [kept[0]]
    for a, b in pairwise(kept):
        out += airspace.route(a, b)[1:]
    if closed and len(kept) > 1:
        out += airspace.route(kept[-1], kept[0])[1:-1]  # bends of the closing leg; the loop closes on kept[0]
    return out


def _bearing_or_north(target: LatLon, approach: LatLon) -> float:
    return bearing_deg(*target, *approach) if distance_m(*target, *approach) > 1.0 else 0.0


def _centroid(points: Sequence[LatLon]) -> LatLon:
    return (sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points))


def return_mission(route_home: Sequence[LatLon], *, alt: float) -> tuple[MissionItem, ...]:
    """Items that bring an airborne drone home along ``route_home`` (position → … → dock).

    A plain RTL flies straight home; when the airspace routes round a zone, upload this instead
    and start it (the vehicle flies the bends, then RTL lands it at home).
    """
    if alt > CEILING_M:
        raise TemplateError(f"return altitude {alt} m is above the {CEILING_M:.0f} m ceiling")
    return (*(waypoint(lat, lon, alt) for lat, lon in route_home[1:-1]), return_to_launch())


def estimated_scene_time_s(
    template: MissionTemplate,
    category: Category | str | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    target: LatLon,
    cruise_speed: float = DEFAULT_SPEED_M_S,
) -> float:
    """Time the pattern will take on scene (for the planner's energy check before a drone is chosen)."""
    dock = (target[0], target[1], 0.0)
    return compile_mission(template, params, dock=dock, target=target, category=category,
                           cruise_speed=cruise_speed).scene_time_s
