"""Airspace: zones with rules, routes round prohibited zones, and the pre-upload mission check.

A city's airspace file is GeoJSON (``sitl/airspace-*.geojson``): one Feature per zone, a Polygon
or MultiPolygon (or a Point with ``radius_m`` for a circle), with properties

* ``id`` (stable), ``name_ko``, ``name_en``;
* ``rule``: ``prohibited`` (never entered), ``approval`` (entered only with an approval reference
  the operator records, e.g. an airport control zone) or ``ceiling`` (a lower height limit,
  ``ceiling_m``, inside the zone);
* optionally ``demo: true`` for invented demo data, ``note``.

The collection's top-level ``properties.ceiling_m`` (default 150 m) is the height limit
everywhere; the optional ``properties.obstacle_height_m`` is how high obstacles round the docks
reach (a take-off climbs vertically that far, then climbs on while flying: domain/launch.py).
Heights are metres above home, as the missions carry them.

Routing is a visibility graph in a metric :class:`~dronedispatch.domain.geo.LocalFrame`: the
prohibited zones grown by ``clearance_m`` are the obstacles; the graph's nodes are the start, the
goal and the obstacles' corners; an edge exists where the straight leg does not enter an
obstacle; Dijkstra finds the shortest path. A shortest path in a plane round polygons always
bends at obstacle corners, so this is exact for the grown polygons.
"""

from __future__ import annotations

import functools
import heapq
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points, unary_union

from dronedispatch.domain.geo import LatLon, LocalFrame, destination
from dronedispatch.domain.mission_items import Cmd, MissionItem

T = TypeVar("T")

DEFAULT_CEILING_M = 150.0
DEFAULT_CLEARANCE_M = 50.0
ROUTE_CACHE_SIZE = 4096
RULES = ("prohibited", "approval", "ceiling")

#: Items the vehicle flies to (ROI points are looked at, not flown to).
FLOWN_COMMANDS = frozenset(
    {Cmd.NAV_TAKEOFF, Cmd.NAV_WAYPOINT, Cmd.NAV_LOITER_UNLIM, Cmd.NAV_LOITER_TIME, Cmd.NAV_LOITER_TURNS,
     Cmd.NAV_LOITER_TO_ALT, Cmd.NAV_LAND}
)


class AirspaceError(ValueError):
    """The airspace file is malformed; the message names the feature and field."""


class NoRoute(Exception):
    """No route avoids the prohibited zones; ``reason`` says why (e.g. target inside a zone)."""

    def __init__(self, reason: str, *, zone: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.zone = zone


@dataclass(frozen=True)
class Zone:
    id: str
    name_ko: str
    name_en: str
    rule: str
    geometry: BaseGeometry  # WGS84, x = lon, y = lat
    ceiling_m: float | None = None
    demo: bool = False
    properties: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name_en} ({self.name_ko})"


@dataclass(frozen=True, slots=True)
class Violation:
    code: str  # prohibited_zone | approval_required | above_ceiling | zone_ceiling
    message: str
    zone: str | None = None
    item: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "zone": self.zone, "item": self.item}


@dataclass(frozen=True)
class AirspaceCheck:
    """The result of checking one mission; store it with the mission (it is the record)."""

    ok: bool
    violations: tuple[Violation, ...]
    zones_entered: tuple[str, ...]
    approvals_used: Mapping[str, str]
    ceiling_m: float
    items_checked: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "violations": [v.as_dict() for v in self.violations],
            "zones_entered": list(self.zones_entered),
            "approvals_used": dict(self.approvals_used),
            "ceiling_m": self.ceiling_m,
            "items_checked": self.items_checked,
        }

    @property
    def summary(self) -> str:
        if self.ok:
            return "airspace check passed"
        return "; ".join(v.message for v in self.violations)


def _circle(lat: float, lon: float, radius_m: float, n: int = 72) -> Polygon:
    pts = [destination(lat, lon, 360.0 * i / n, radius_m) for i in range(n)]
    return Polygon([(p[1], p[0]) for p in pts])


def parse_zone(feature: Mapping[str, Any], index: int) -> Zone:
    props = dict(feature.get("properties") or {})
    where = f"features[{index}]" + (f" ({props['id']})" if "id" in props else "")
    for key in ("id", "name_ko", "name_en", "rule"):
        if not isinstance(props.get(key), str) or not props[key]:
            raise AirspaceError(f"{where}: properties.{key} is required (a non-empty string)")
    if props["rule"] not in RULES:
        raise AirspaceError(f"{where}: properties.rule must be one of {', '.join(RULES)}, got {props['rule']!r}")
    ceiling = props.get("ceiling_m")
    if props["rule"] == "ceiling" and not isinstance(ceiling, int | float):
        raise AirspaceError(f"{where}: properties.ceiling_m is required for a ceiling zone")
    try:
        geom = shape(feature["geometry"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AirspaceError(f"{where}: geometry is not valid GeoJSON: {exc}") from exc
    if isinstance(geom, Point):
        radius = props.get("radius_m")
        if not isinstance(radius, int | float) or radius <= 0:
            raise AirspaceError(f"{where}: a Point zone needs properties.radius_m > 0")
        geom = _circle(geom.y, geom.x, float(radius))
    if not isinstance(geom, Polygon | MultiPolygon) or geom.is_empty:
        raise AirspaceError(f"{where}: geometry must be a Polygon, MultiPolygon or Point with radius_m")
    if not geom.is_valid:
        raise AirspaceError(f"{where}: geometry is not a valid polygon ({shapely.is_valid_reason(geom)})")
    return Zone(props["id"], props["name_ko"], props["name_en"], props["rule"], geom,
                float(ceiling) if ceiling is not None else None, bool(props.get("demo", False)), props)


def _serialised(method: Callable[..., T]) -> Callable[..., T]:
    """One caller at a time: GEOS prepared geometries and the route cache are not thread-safe,
    and the API answers requests from a thread pool (concurrent use crashed GEOS)."""

    @functools.wraps(method)
    def locked(self: Airspace, *args: Any, **kwargs: Any) -> T:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class Airspace:
    """A city's zones and ceiling; routing and checking happen in one local metric frame.

    Safe to share between threads: the public queries are serialised (see :func:`_serialised`).
    """

    def __init__(
        self,
        zones: Iterable[Zone] = (),
        *,
        ceiling_m: float = DEFAULT_CEILING_M,
        clearance_m: float = DEFAULT_CLEARANCE_M,
        frame: LocalFrame | None = None,
        obstacle_height_m: float | None = None,
    ) -> None:
        self._lock = threading.RLock()
        # how high buildings and masts round the docks reach: a take-off climbs vertically this far,
        # then climbs on while flying (None: the planner's default, domain/launch.py)
        self.obstacle_height_m = obstacle_height_m
        self.zones = tuple(zones)
        ids = [z.id for z in self.zones]
        if len(set(ids)) != len(ids):
            raise AirspaceError("zone ids must be unique")
        self.ceiling_m = ceiling_m
        self.clearance_m = clearance_m
        if frame is None:
            if self.zones:
                c = unary_union([z.geometry for z in self.zones]).envelope.centroid
                frame = LocalFrame(c.y, c.x)
            else:
                frame = LocalFrame(0.0, 0.0)
        self.frame = frame
        self._local = {z.id: self._to_local(z.geometry) for z in self.zones}
        prohibited = [self._local[z.id] for z in self.zones if z.rule == "prohibited"]
        grown = unary_union([g.buffer(clearance_m, quad_segs=4) for g in prohibited]) if prohibited else None
        self._obstacles: BaseGeometry | None = grown
        # edges are tested against the obstacles shrunk a little, so legs along their corners count as clear
        self._blocking: BaseGeometry | None = grown.buffer(-min(1.0, clearance_m / 10)) if grown is not None else None
        if self._blocking is not None:
            shapely.prepare(self._blocking)
        self._corners = self._corner_points(grown)
        self._corner_adj = self._corner_graph()
        self._routes: dict[tuple[float, ...], list[LatLon] | NoRoute] = {}

    @classmethod
    def from_geojson(cls, data: Mapping[str, Any], **kwargs: Any) -> Airspace:
        if not isinstance(data, Mapping) or data.get("type") != "FeatureCollection":
            raise AirspaceError("airspace must be a GeoJSON FeatureCollection")
        features = data.get("features")
        if not isinstance(features, list):
            raise AirspaceError("features must be a list")
        props = data.get("properties") or {}
        kwargs.setdefault("ceiling_m", float(props.get("ceiling_m", DEFAULT_CEILING_M)))
        if isinstance(props.get("obstacle_height_m"), int | float):
            kwargs.setdefault("obstacle_height_m", float(props["obstacle_height_m"]))
        return cls([parse_zone(f, i) for i, f in enumerate(features)], **kwargs)

    def as_geojson(self) -> dict[str, Any]:
        """For ``GET /airspace``: circles expanded to polygons, rules and names in properties."""
        return {
            "type": "FeatureCollection",
            "properties": {"ceiling_m": self.ceiling_m}
            | ({"obstacle_height_m": self.obstacle_height_m} if self.obstacle_height_m is not None else {}),
            "features": [
                {"type": "Feature", "geometry": shapely.geometry.mapping(z.geometry),
                 "properties": {**z.properties, "id": z.id, "rule": z.rule}}
                for z in self.zones
            ],
        }

    # --- geometry helpers ---------------------------------------------------------------------

    def _to_local(self, geom: BaseGeometry) -> BaseGeometry:
        def tx(coords: np.ndarray) -> np.ndarray:
            x, y = self.frame._fwd.transform(coords[:, 0], coords[:, 1])
            return np.column_stack([x, y])

        return shapely.transform(geom, tx)

    @staticmethod
    def _corner_points(geom: BaseGeometry | None) -> list[tuple[float, float]]:
        if geom is None:
            return []
        polys = geom.geoms if isinstance(geom, MultiPolygon) else [geom]
        pts: list[tuple[float, float]] = []
        for poly in polys:
            # a shortest path only bends at convex corners of the outer ring
            pts.extend((float(x), float(y)) for x, y in list(poly.exterior.coords)[:-1])
        return pts

    @_serialised
    def zones_at(self, lat: float, lon: float) -> list[Zone]:
        p = Point(lon, lat)
        return [z for z in self.zones if z.geometry.covers(p)]

    @_serialised
    def prohibited_at(self, lat: float, lon: float) -> Zone | None:
        return next((z for z in self.zones_at(lat, lon) if z.rule == "prohibited"), None)

    # --- routing ------------------------------------------------------------------------------

    @_serialised
    def route(self, start: LatLon, goal: LatLon) -> list[LatLon]:
        """Shortest path start → goal keeping ``clearance_m`` from every prohibited zone.

        Raises :class:`NoRoute` when the goal (or start) lies inside a prohibited zone or the
        zones leave no way through. Results are memoised per (start, goal): the zones never change
        for an :class:`Airspace` (a new airspace file makes a new instance).
        """
        key = (round(start[0], 7), round(start[1], 7), round(goal[0], 7), round(goal[1], 7))
        hit = self._routes.get(key)
        if hit is None:
            try:
                hit = self._route(start, goal)
            except NoRoute as exc:
                hit = exc
            if len(self._routes) >= ROUTE_CACHE_SIZE:
                self._routes.pop(next(iter(self._routes)))
            self._routes[key] = hit
        if isinstance(hit, NoRoute):
            raise NoRoute(hit.reason, zone=hit.zone)
        return [start, *hit[1:-1], goal]  # the caller's own end points, not the cached ones

    def _route(self, start: LatLon, goal: LatLon) -> list[LatLon]:
        for what, pt in (("target", goal), ("start", start)):
            z = self.prohibited_at(*pt)
            if z is not None:
                raise NoRoute(f"{what} is inside prohibited zone {z.label}", zone=z.id)
        if self._blocking is None:
            return [start, goal]
        s, g = self.frame.to_local(*start), self.frame.to_local(*goal)
        blocking = self._blocking
        corners = self._corners
        c = len(corners)
        extra = [s, g]
        forced: list[tuple[int, int, float]] = []
        # a start or goal inside the clearance margin (but outside the zone) leaves it by the
        # shortest way out; that one leg may use the margin, never the zone itself
        for idx, pt in ((c, s), (c + 1, g)):
            if blocking.covers(Point(pt)):
                esc = self._escape(pt)
                if esc is None:
                    raise NoRoute("the way out of a zone's clearance margin is blocked")
                extra.append(esc)
                forced.append((idx, c + len(extra) - 1, math.dist(pt, esc)))
        if not forced and not blocking.intersects(LineString([s, g])):
            return [start, goal]
        # corner-to-corner visibility is fixed per airspace (computed once); only the legs from
        # the query's own points to the corners and to each other are tested here
        nodes = [*corners, *extra]
        coords = np.asarray(nodes)
        ii = np.repeat(np.arange(c, len(nodes)), c)
        jj = np.tile(np.arange(c), len(extra))
        ei, ej = np.triu_indices(len(extra), k=1)
        ii = np.concatenate([ii, ei + c])
        jj = np.concatenate([jj, ej + c])
        clear, lengths = self._visible(coords, ii, jj, blocking)
        adj = [list(edges) for edges in self._corner_adj] + [[] for _ in extra]
        for a, b, d in [*zip(ii[clear], jj[clear], lengths[clear], strict=True), *forced]:
            adj[a].append((int(b), float(d)))
            adj[b].append((int(a), float(d)))
        path = _dijkstra(adj, c, c + 1)
        if path is None:
            raise NoRoute("prohibited zones leave no way through to the target")
        return [start, *(self.frame.to_wgs84(*nodes[k]) for k in path[1:-1]), goal]

    @staticmethod
    def _visible(
        coords: np.ndarray, ii: np.ndarray, jj: np.ndarray, blocking: BaseGeometry
    ) -> tuple[np.ndarray, np.ndarray]:
        segs = shapely.linestrings(np.stack([coords[ii], coords[jj]], axis=1))
        clear = ~shapely.intersects(blocking, segs)
        return clear, np.hypot(*(coords[ii] - coords[jj]).T)

    def _corner_graph(self) -> list[list[tuple[int, float]]]:
        n = len(self._corners)
        adj: list[list[tuple[int, float]]] = [[] for _ in range(n)]
        if n < 2 or self._blocking is None:
            return adj
        ii, jj = np.triu_indices(n, k=1)
        clear, lengths = self._visible(np.asarray(self._corners), ii, jj, self._blocking)
        for a, b, d in zip(ii[clear], jj[clear], lengths[clear], strict=True):
            adj[a].append((int(b), float(d)))
            adj[b].append((int(a), float(d)))
        return adj

    def _escape(self, pt: tuple[float, float]) -> tuple[float, float] | None:
        """The nearest point just outside the grown obstacles, if the straight way there stays
        out of every prohibited zone proper."""
        assert self._obstacles is not None and self._blocking is not None
        near = nearest_points(self._obstacles.boundary, Point(pt))[0]
        dx, dy = near.x - pt[0], near.y - pt[1]
        length = math.hypot(dx, dy) or 1.0
        esc = (near.x + dx / length * 1.0, near.y + dy / length * 1.0)
        inner = unary_union([self._local[z.id] for z in self.zones if z.rule == "prohibited"])
        if self._blocking.covers(Point(esc)) or LineString([pt, esc]).intersects(inner):
            return None
        return esc

    # --- mission check ------------------------------------------------------------------------

    @_serialised
    def check_mission(
        self,
        items: Sequence[MissionItem],
        *,
        home: LatLon,
        approvals: Mapping[str, str] | None = None,
    ) -> AirspaceCheck:
        """Check every leg the vehicle will fly (home → items → home on return) and every height.

        ``approvals`` maps zone id → the approval reference the operator recorded.
        """
        approvals = {k: v for k, v in (approvals or {}).items() if v and v.strip()}
        violations: list[Violation] = []
        legs: list[tuple[int, LineString | Point]] = []
        prev = self.frame.to_local(*home)
        for i, it in enumerate(items):
            if it.command in FLOWN_COMMANDS:
                if it.alt > self.ceiling_m:
                    violations.append(Violation("above_ceiling", f"item {i}: {it.alt:.0f} m is above the "
                                                f"{self.ceiling_m:.0f} m ceiling", item=i))
                cur = self.frame.to_local(it.lat, it.lon)
                legs.append((i, LineString([prev, cur]) if cur != prev else Point(cur)))
                prev = cur
            elif it.command == Cmd.DO_JUMP and it.param2 > 0:
                # the jump flies from here back to its target: check that leg as well
                target = next((items[k] for k in range(int(it.param1), len(items))
                               if items[k].command in FLOWN_COMMANDS), None)
                if target is not None:
                    legs.append((i, LineString([prev, self.frame.to_local(target.lat, target.lon)])))
            elif it.command == Cmd.NAV_RETURN_TO_LAUNCH:
                cur = self.frame.to_local(*home)
                legs.append((i, LineString([prev, cur]) if cur != prev else Point(cur)))
                prev = cur
        entered: list[str] = []
        used: dict[str, str] = {}
        for z in self.zones:
            local = self._local[z.id]
            hits = [i for i, leg in legs if leg.intersects(local)]
            if not hits:
                continue
            entered.append(z.id)
            if z.rule == "prohibited":
                violations.append(Violation("prohibited_zone", f"item {hits[0]}: the leg enters prohibited zone "
                                            f"{z.label}", zone=z.id, item=hits[0]))
            elif z.rule == "approval":
                if z.id in approvals:
                    used[z.id] = approvals[z.id]
                else:
                    violations.append(Violation("approval_required", f"item {hits[0]}: entering {z.label} needs an "
                                                "approval reference", zone=z.id, item=hits[0]))
            elif z.rule == "ceiling" and z.ceiling_m is not None:
                for i in hits:
                    if items[i].command in FLOWN_COMMANDS and items[i].alt > z.ceiling_m:
                        violations.append(Violation("zone_ceiling", f"item {i}: {items[i].alt:.0f} m is above the "
                                                    f"{z.ceiling_m:.0f} m limit of {z.label}", zone=z.id, item=i))
                        break
        return AirspaceCheck(not violations, tuple(violations), tuple(entered), used, self.ceiling_m, len(items))


def _dijkstra(adj: list[list[tuple[int, float]]], src: int, dst: int) -> list[int] | None:
    dist = [math.inf] * len(adj)
    prev = [-1] * len(adj)
    dist[src] = 0.0
    heap = [(0.0, src)]
    while heap:
        d, u = heapq.heappop(heap)
        if u == dst:
            break
        if d > dist[u]:
            continue
        for v, w in adj[u]:
            nd = d + w
            if nd < dist[v]:
                dist[v], prev[v] = nd, u
                heapq.heappush(heap, (nd, v))
    if math.isinf(dist[dst]):
        return None
    path = [dst]
    while path[-1] != src:
        path.append(prev[path[-1]])
    return path[::-1]
