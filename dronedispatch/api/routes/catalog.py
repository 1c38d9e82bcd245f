"""What the map and forms need: fleet, airspace, cameras, districts, templates, view settings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from dronedispatch.api.access import DroneId, ScopeDep
from dronedispatch.api.deps import AnyUser, RuntimeDep
from dronedispatch.schemas import DronePublic

router = APIRouter(tags=["fleet and map"])


@router.get("/drones", response_model=list[DronePublic], summary="Every drone with its live state")
def drones(runtime: RuntimeDep, _: AnyUser, scope: ScopeDep) -> list[DronePublic]:
    held = {s.drone_id: s.launch_block for s in runtime.dispatcher.drone_statuses() if s.launch_block is not None}
    visible = runtime.access.visible_drones(scope)
    return [d.model_copy(update={"held_back": held[d.id].as_dict()}) if d.id in held else d
            for d in runtime.fleet.public() if d.id in visible]  # fmt: skip


@router.get("/drones/{drone_id}", response_model=DronePublic, summary="One drone")
def drone(runtime: RuntimeDep, _: AnyUser, drone_id: DroneId) -> DronePublic:
    return runtime.registry.public(runtime.fleet.entry(drone_id))


@router.get("/docks", summary="Docks of the fleet, each with its live state (null when none heard)")
def docks(runtime: RuntimeDep, _: AnyUser, scope: ScopeDep) -> list[dict[str, Any]]:
    states = runtime.docks.states()
    return [
        {**d.model_dump(), "state": states[d.id].model_dump(mode="json") if d.id in states else None}
        for d in runtime.fleet_config.docks
        if runtime.access.dock_visible(scope, d.id)
    ]


@router.get("/airspace", summary="Airspace zones (GeoJSON FeatureCollection)")
def airspace(runtime: RuntimeDep, _: AnyUser) -> dict[str, Any]:
    return runtime.airspace.as_geojson()


@router.get("/cameras", summary="Fixed cameras and sensors")
def cameras(runtime: RuntimeDep, _: AnyUser, scope: ScopeDep) -> list[dict[str, Any]]:
    return [c.model_dump(mode="json") for c in runtime.cameras.cameras if runtime.access.camera_visible(scope, c.id)]


@router.get("/districts", summary="District outlines for the offline basemap (GeoJSON)")
def districts(runtime: RuntimeDep, _: AnyUser) -> dict[str, Any]:
    return runtime.districts


@router.get("/mission-templates", summary="Mission templates with their parameters")
def mission_templates(runtime: RuntimeDep, _: AnyUser) -> list[dict[str, Any]]:
    return [t.as_dict() for t in runtime.templates.values()]


@router.get("/view-config", summary="Settings the operations view needs (map tiles, city)")
def view_config(runtime: RuntimeDep) -> dict[str, Any]:
    return {"tile_url": runtime.settings.tile_url, "city": runtime.fleet_config.city}
