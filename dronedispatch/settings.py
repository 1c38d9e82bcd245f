"""Service settings, read from DD_* environment variables (pydantic-settings)."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from dronedispatch import cityfiles


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DD_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./var/dronedispatch.db",
        description="SQLAlchemy URL of the store: SQLite for one machine, postgresql+psycopg://… for more.",
    )
    mavlink: str = Field(
        default="udpin:127.0.0.1:14550",
        description="Comma-separated MAVLink connection strings (udpin:, udpout:, tcp:, serial:).",
    )
    fleet: Path = Field(default=cityfiles.DEFAULT_FLEET, description="Fleet file: docks and drones (YAML).")
    airspace: Path = Field(default=cityfiles.DEFAULT_AIRSPACE, description="Airspace zones (GeoJSON).")
    cameras: Path = Field(default=cityfiles.DEFAULT_CAMERAS, description="Fixed cameras and sensors (YAML).")
    districts: Path = Field(
        default=cityfiles.DEFAULT_DISTRICTS, description="District outlines for the offline basemap (GeoJSON)."
    )
    mqtt_url: str | None = Field(
        default=None, description="MQTT broker to subscribe to for incident reports, e.g. mqtt://127.0.0.1:1883."
    )
    secret_key: str = Field(
        default_factory=lambda: secrets.token_urlsafe(32),
        description="Key that signs access tokens. Set it so tokens survive restarts and work on every node.",
    )
    token_ttl_minutes: int = Field(default=12 * 60, ge=1, description="Lifetime of an access token, minutes.")
    ingest_api_keys: list[str] = Field(
        default_factory=list, description="API keys accepted by POST /api/v1/ingest/webhook (X-API-Key)."
    )
    signing_keys: dict[int, str] = Field(
        default_factory=dict,
        description="MAVLink 2 signing keys per system id, as 64 hex characters (32 bytes).",
    )
    link_lost_after_s: float = Field(default=3.0, gt=0, description="Silence after which a vehicle is 'lost'.")
    link_busy_poll_ms: float = Field(
        default=1.0,
        ge=0,
        le=20,
        description="While a mission transfer waits on a vehicle's reply, poll for it this long instead of sleeping "
        "(0 turns it off): a reply is read within microseconds, at the cost of CPU during uploads.",
    )
    telemetry_rate_hz: float = Field(
        default=4.0, gt=0, le=50, description="Highest rate at which one drone's telemetry goes to browsers."
    )
    max_auto_eta_s: float = Field(
        default=600.0,
        gt=0,
        description="A dispatch that names no drone refuses one arriving later than this (seconds); "
        "the operator can still send it by name.",
    )
    ice_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1"],
        description="Addresses offered as WebRTC host candidates; remote candidates outside them are dropped.",
    )
    ice_servers: list[str] = Field(
        default_factory=list, description="STUN/TURN URLs for WebRTC; empty means none is ever contacted."
    )
    tile_url: str | None = Field(
        default=None, description="Map tile URL template; none draws the offline basemap from the city files."
    )
    recordings_dir: Path = Field(default=Path("var/recordings"), description="Where mission videos are kept.")
    web_dir: Path = Field(default=cityfiles.PROJECT_ROOT / "web", description="Static files of the operations view.")
