"""QGroundControl ``.plan`` files: export mission items to one, import one back.

The format (QGC developer guide, "Plan File Format"): a JSON object with ``fileType: "Plan"``,
``version: 1``, ``groundStation``, a ``mission`` object (``version: 2``, ``firmwareType`` as
MAV_AUTOPILOT, ``vehicleType`` as MAV_TYPE, ``cruiseSpeed``, ``hoverSpeed``,
``plannedHomePosition`` [lat, lon, alt AMSL], ``items``), an optional ``geoFence`` (polygons and
circles, inclusion or exclusion) and optional ``rallyPoints``.

A ``SimpleItem`` maps onto one mission item: ``command``, ``frame``, ``autoContinue`` and seven
``params`` (param1-4, latitude, longitude, altitude), with JSON ``null`` for NaN. Two
conventions differ from the wire and are converted here:

* QGC writes the non-INT frames (3 = GLOBAL_RELATIVE_ALT, 0 = GLOBAL, 10 = GLOBAL_TERRAIN_ALT);
  we carry the *_INT ones (6, 5, 11).
* Items carry a 1-based ``doJumpId`` and DO_JUMP's param1 names the target's ``doJumpId``, not
  its 0-based sequence number.

``ComplexItem`` entries (QGC survey, corridor scan, structure scan) are expanded by QGC itself on
upload; we do not re-implement them and refuse such files with a message naming the item.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dronedispatch.domain.geo import LatLon
from dronedispatch.domain.mission_items import Cmd, Frame, MissionItem

MAV_AUTOPILOT_PX4 = 12
MAV_TYPE_QUADROTOR = 2
GROUND_STATION = "dronedispatch"

_TO_QGC_FRAME = {
    Frame.GLOBAL_RELATIVE_ALT_INT: Frame.GLOBAL_RELATIVE_ALT,
    Frame.GLOBAL_INT: Frame.GLOBAL,
    Frame.GLOBAL_TERRAIN_ALT_INT: 10,
}
_FROM_QGC_FRAME = {int(v): int(k) for k, v in _TO_QGC_FRAME.items()}
#: QGC AltitudeMode per (QGC) frame: 0 relative to home, 1 AMSL, 3 terrain frame
_ALT_MODE = {int(Frame.GLOBAL_RELATIVE_ALT): 0, int(Frame.GLOBAL): 1, 10: 3}


class PlanFormatError(ValueError):
    """The file is not a plan we can read; the message names the JSON path and the problem."""


@dataclass(frozen=True)
class ImportedPlan:
    items: tuple[MissionItem, ...]
    home: tuple[float, float, float] | None
    cruise_speed: float | None
    hover_speed: float | None
    fence_exclusions: tuple[tuple[LatLon, ...], ...] = ()
    fence_inclusions: tuple[tuple[LatLon, ...], ...] = ()
    rally_points: tuple[tuple[float, float, float], ...] = ()


def _num(v: float) -> float | None:
    return None if isinstance(v, float) and math.isnan(v) else v


def to_plan(
    items: Sequence[MissionItem],
    *,
    home: tuple[float, float, float],
    cruise_speed: float = 12.0,
    hover_speed: float = 5.0,
    exclusion_zones: Sequence[Sequence[LatLon]] = (),
    rally_points: Sequence[tuple[float, float, float]] = (),
) -> dict[str, Any]:
    """A QGroundControl plan (as a JSON-ready dict) for ``items``; prohibited zones go in the
    geofence as exclusion polygons so QGC shows them and PX4 can enforce them."""
    out_items: list[dict[str, Any]] = []
    for seq, it in enumerate(items):
        frame = int(_TO_QGC_FRAME.get(it.frame, it.frame))  # type: ignore[call-overload]
        p1 = it.param1
        if it.command == Cmd.DO_JUMP:
            target = int(it.param1)
            if not 0 <= target < len(items):
                raise PlanFormatError(f"item {seq}: DO_JUMP to item {target}, which does not exist")
            p1 = target + 1  # doJumpId of the target
        positional = it.is_positional
        entry: dict[str, Any] = {
            "type": "SimpleItem",
            "autoContinue": bool(it.autocontinue),
            "command": int(it.command),
            "doJumpId": seq + 1,
            "frame": frame,
            "params": [_num(p1), _num(it.param2), _num(it.param3), _num(it.param4),
                       it.lat if positional else 0, it.lon if positional else 0, it.alt if positional else 0],
        }
        if positional and frame in _ALT_MODE:
            entry.update({"AltitudeMode": _ALT_MODE[frame], "Altitude": it.alt, "AMSLAltAboveTerrain": None})
        out_items.append(entry)
    return {
        "fileType": "Plan",
        "version": 1,
        "groundStation": GROUND_STATION,
        "mission": {
            "version": 2,
            "firmwareType": MAV_AUTOPILOT_PX4,
            "vehicleType": MAV_TYPE_QUADROTOR,
            "cruiseSpeed": cruise_speed,
            "hoverSpeed": hover_speed,
            "globalPlanAltitudeMode": 0,
            "plannedHomePosition": [home[0], home[1], home[2]],
            "items": out_items,
        },
        "geoFence": {
            "version": 2,
            "circles": [],
            "polygons": [
                {"inclusion": False, "version": 1, "polygon": [[lat, lon] for lat, lon in zone]}
                for zone in exclusion_zones
            ],
        },
        "rallyPoints": {"version": 2, "points": [list(p) for p in rally_points]},
    }


def dumps(plan: Mapping[str, Any]) -> str:
    return json.dumps(plan, indent=4, ensure_ascii=False, allow_nan=False)


def loads(text: str | bytes) -> ImportedPlan:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PlanFormatError(f"not JSON: {exc}") from exc
    return from_plan(data)


def _expect(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise PlanFormatError(f"{where}: {what}")


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def from_plan(data: Any) -> ImportedPlan:
    """Mission items (0-based DO_JUMP targets, *_INT frames) from a parsed ``.plan``."""
    _expect(isinstance(data, Mapping), "(top level)", "expected a JSON object")
    _expect(data.get("fileType") == "Plan", "fileType", f"must be \"Plan\", got {data.get('fileType')!r}")
    mission = data.get("mission")
    _expect(isinstance(mission, Mapping), "mission", "missing or not an object")
    raw_items = mission.get("items")
    _expect(isinstance(raw_items, list), "mission.items", "missing or not a list")
    home_raw = mission.get("plannedHomePosition")
    home = None
    if home_raw is not None:
        _expect(isinstance(home_raw, list) and len(home_raw) == 3 and all(_is_num(v) for v in home_raw),
                "mission.plannedHomePosition", "expected [lat, lon, alt]")
        home = (float(home_raw[0]), float(home_raw[1]), float(home_raw[2]))
    parsed: list[tuple[dict[str, Any], int]] = []
    by_jump_id: dict[int, int] = {}
    for i, raw in enumerate(raw_items):
        where = f"mission.items[{i}]"
        _expect(isinstance(raw, Mapping), where, "expected an object")
        kind = raw.get("type")
        _expect(kind == "SimpleItem", f"{where}.type",
                f"{kind!r} is not supported (only SimpleItem; let QGroundControl expand survey/corridor "
                "items by saving the mission after upload)" if kind == "ComplexItem" else f"unknown type {kind!r}")
        params = raw.get("params")
        _expect(isinstance(params, list) and len(params) == 7, f"{where}.params", "expected a list of 7 values")
        _expect(all(p is None or _is_num(p) for p in params), f"{where}.params", "values must be numbers or null")
        _expect(_is_num(raw.get("command")), f"{where}.command", "expected a MAV_CMD number")
        _expect(_is_num(raw.get("frame")), f"{where}.frame", "expected a MAV_FRAME number")
        jump_id = raw.get("doJumpId")
        if jump_id is not None:
            _expect(_is_num(jump_id), f"{where}.doJumpId", "expected a number")
            by_jump_id[int(jump_id)] = i
        parsed.append((dict(raw), i))
    items: list[MissionItem] = []
    for raw, i in parsed:
        p = [float("nan") if v is None else float(v) for v in raw["params"]]
        command = int(raw["command"])
        frame = _FROM_QGC_FRAME.get(int(raw["frame"]), int(raw["frame"]))
        if command == Cmd.DO_JUMP:
            target = by_jump_id.get(int(p[0]))
            _expect(target is not None, f"mission.items[{i}].params[0]", f"DO_JUMP to doJumpId {int(p[0])}, "
                                                                          "which no item has")
            p[0] = float(target)  # type: ignore[arg-type]
        item = MissionItem(command, lat=p[4], lon=p[5], alt=p[6], param1=p[0], param2=p[1], param3=p[2],
                           param4=p[3], frame=frame, autocontinue=bool(raw.get("autoContinue", True)))
        if not item.is_positional:
            item = MissionItem(command, 0.0, 0.0, 0.0, p[0], p[1], p[2], p[3], frame, item.autocontinue)
        elif not (-90 <= item.lat <= 90 and -180 <= item.lon <= 180):
            raise PlanFormatError(f"mission.items[{i}].params: latitude/longitude out of range")
        items.append(item)
    excl, incl = _fence(data.get("geoFence"))
    rally = tuple(
        (float(p[0]), float(p[1]), float(p[2]))
        for p in ((data.get("rallyPoints") or {}).get("points") or [])
        if isinstance(p, list) and len(p) == 3 and all(_is_num(v) for v in p)
    )
    cruise, hover = mission.get("cruiseSpeed"), mission.get("hoverSpeed")
    return ImportedPlan(tuple(items), home, float(cruise) if _is_num(cruise) else None,
                        float(hover) if _is_num(hover) else None, excl, incl, rally)


def _fence(fence: Any) -> tuple[tuple[tuple[LatLon, ...], ...], tuple[tuple[LatLon, ...], ...]]:
    if not isinstance(fence, Mapping):
        return (), ()
    excl: list[tuple[LatLon, ...]] = []
    incl: list[tuple[LatLon, ...]] = []
    for j, poly in enumerate(fence.get("polygons") or []):
        where = f"geoFence.polygons[{j}]"
        _expect(isinstance(poly, Mapping) and isinstance(poly.get("polygon"), list), where, "expected {polygon: [...]}")
        pts = poly["polygon"]
        _expect(all(isinstance(p, list) and len(p) == 2 and all(_is_num(v) for v in p) for p in pts),
                f"{where}.polygon", "expected a list of [lat, lon]")
        ring = tuple((float(p[0]), float(p[1])) for p in pts)
        (incl if poly.get("inclusion", True) else excl).append(ring)
    return tuple(excl), tuple(incl)
