"""Fixed assets of a city: CCTV cameras and sensors, as declared in its cameras file.

A report that names a camera (Frigate, a VMS alarm, a sensor webhook) gets its location from
here. Cameras carry a view direction so the map can draw their field of view and so a report can
be placed at the point the camera looks at (:meth:`Camera.view_point`).
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, field_serializer, field_validator, model_validator

from dronedispatch.domain.geo import LatLon, destination

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s]+@")


def redact_credentials(text: str) -> str:
    """``rtsp://user:pass@host/x`` -> ``rtsp://***@host/x`` wherever a URL appears in ``text`` (logs, errors)."""
    return _USERINFO.sub(r"\1***@", text)


class AssetKind(StrEnum):
    CCTV = "cctv"
    PTZ = "ptz"
    WATER_LEVEL = "water_level"
    AIR_QUALITY = "air_quality"
    FIRE_DETECTOR = "fire_detector"
    OTHER = "other"


class OnvifSource(BaseModel):
    """Where and how the service subscribes to a camera's ONVIF events (PullPoint).

    ``topics`` maps an event topic (``tns1:RuleEngine/CellMotionDetector/Motion``, the same without
    the prefix, or a short name: motion, line_crossing, intrusion, tamper) to an incident category;
    without it the service's default table applies. Excluded from every dump, so the password never
    reaches an API answer or a log line.
    """

    url: str = Field(description="Device service, e.g. http://127.0.0.1:18080/onvif/device_service.")
    username: str = Field(default="admin", description="WS-Security UsernameToken user.")
    password: str = Field(default="", description="WS-Security UsernameToken password.")
    topics: dict[str, str] | None = Field(default=None, description="Event topic -> incident category.")


class Camera(BaseModel):
    id: str = Field(description="Stable id used by sources (Frigate camera name, VMS id).")
    kind: AssetKind = Field(default=AssetKind.CCTV, description="cctv, ptz or a sensor kind.")
    name_ko: str = Field(description="Korean display name.")
    name_en: str = Field(description="English display name.")
    lat: float = Field(ge=-90, le=90, description="Mount position latitude, WGS84.")
    lon: float = Field(ge=-180, le=180, description="Mount position longitude, WGS84.")
    height_m: float = Field(default=8.0, ge=0, description="Mount height above ground, m.")
    heading_deg: float | None = Field(default=None, ge=0, lt=360, description="View direction, clockwise from north.")
    fov_deg: float | None = Field(default=None, gt=0, le=360, description="Horizontal field of view.")
    range_m: float = Field(default=80.0, gt=0, description="Distance at which it usefully sees, m.")
    district: str | None = Field(default=None, description="District the asset belongs to.")
    stream_url: str | None = Field(default=None, description="Where its video can be fetched, if anywhere.")
    stream: str | None = Field(
        default=None, description="Live H.264 RTSP stream (rtsp://user:pass@host:port/path); relayed to browsers."
    )
    snapshot_url: str | None = Field(default=None, description="HTTP(S) URL answering a JPEG of the current picture.")

    @field_validator("stream")
    @classmethod
    def _rtsp(cls, v: str | None) -> str | None:
        if v is not None and not v.lower().startswith(("rtsp://", "rtsps://")):
            raise ValueError(f"stream must be an rtsp:// or rtsps:// URL, not {redact_credentials(v)!r}")
        return v

    @field_validator("snapshot_url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.lower().startswith(("http://", "https://")):
            raise ValueError(f"snapshot_url must be an http:// or https:// URL, not {redact_credentials(v)!r}")
        return v

    @field_serializer("stream", "snapshot_url", "stream_url")
    def _redacted(self, v: str | None) -> str | None:
        # Every dump (API answers, GeoJSON, logs of a model) shows the URL without its user:password.
        return redact_credentials(v) if v is not None else None
    onvif: OnvifSource | None = Field(default=None, exclude=True, description="ONVIF event subscription, if any.")

    def view_point(self, fraction: float = 0.5) -> LatLon:
        """The point ``fraction`` of ``range_m`` along the view direction (the mount for sensors)."""
        if self.heading_deg is None:
            return (self.lat, self.lon)
        return destination(self.lat, self.lon, self.heading_deg, self.range_m * fraction)

    @property
    def is_camera(self) -> bool:
        return self.kind in (AssetKind.CCTV, AssetKind.PTZ)


class AssetRegistry(BaseModel):
    city: str = Field(description="City identifier, e.g. 'ifez'.")
    cameras: list[Camera] = Field(default_factory=list, description="Cameras and sensors.")

    @model_validator(mode="after")
    def _unique(self) -> AssetRegistry:
        seen: set[str] = set()
        for c in self.cameras:
            if c.id in seen:
                raise ValueError(f"camera id {c.id!r} appears twice")
            seen.add(c.id)
        return self

    def get(self, asset_id: str) -> Camera | None:
        return next((c for c in self.cameras if c.id == asset_id), None)

    def __contains__(self, asset_id: object) -> bool:
        return any(c.id == asset_id for c in self.cameras)

    def as_geojson(self) -> dict:
        """For ``GET /cameras``: one Point feature per asset with its properties."""
        return {
            "type": "FeatureCollection",
            "features": [
                {"type": "Feature", "geometry": {"type": "Point", "coordinates": [c.lon, c.lat]},
                 "properties": c.model_dump(mode="json", exclude={"lat", "lon"})}
                for c in self.cameras
            ],
        }


class AssetFileError(ValueError):
    """The cameras file is malformed; the message names the file and the problem."""


def load_assets(path: Path | str) -> AssetRegistry:
    """Read and validate a cameras file (YAML or JSON)."""
    data = _read(Path(path))
    try:
        return AssetRegistry.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors())
        raise AssetFileError(f"{path}: {problems}") from exc
    except ValueError as exc:
        raise AssetFileError(str(exc)) from exc


def _read(path: Path) -> Any:
    # Read here, as templates.py reads its files, rather than through dronedispatch.cityfiles: that
    # module builds on the domain, and the domain imports nothing outside itself.
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AssetFileError(f"{path}: cannot read: {exc.strerror}") from exc
    json_file = path.suffix in (".json", ".geojson")
    try:
        return json.loads(text) if json_file else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise AssetFileError(f"{path}: not valid {'JSON' if json_file else 'YAML'}: {exc}") from exc
