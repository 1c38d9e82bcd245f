"""Service settings, read from DD_* environment variables (pydantic-settings)."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dronedispatch import cityfiles
from dronedispatch.mavlink.transport import connection_strings, parse_url

SIGNING_KEY_BYTES = 32
#: Shortest DD_SECRET_KEY accepted: HS256 wants a key at least as long as its 256-bit hash, and a short
#: one is usually a placeholder ("secret", "changeme") that anyone can use to forge a token.
MIN_SECRET_KEY_CHARS = 32


def signing_key_from_hex(sysid: int, key: str) -> bytes:
    """The 32-byte MAVLink 2 signing key for vehicle ``sysid`` written as hex; ValueError saying
    what is wrong otherwise. DD_SIGNING_KEYS and ``dronedispatch sitl --signing-key`` both read keys so."""
    if not 1 <= sysid <= 255:
        raise ValueError(f"system id {sysid} is outside 1..255")
    try:
        raw = bytes.fromhex(key)
    except ValueError:
        raise ValueError(f"the key for system {sysid} is not hexadecimal") from None
    if len(raw) != SIGNING_KEY_BYTES:
        raise ValueError(
            f"the key for system {sysid} has {2 * len(raw)} hex characters; a MAVLink signing key has "
            f"{2 * SIGNING_KEY_BYTES} ({SIGNING_KEY_BYTES} bytes)"
        )
    return raw


class StartupError(RuntimeError):
    """An engine the settings name cannot be reached (the database, the NATS server): said in one line."""


class Settings(BaseSettings):
    # hide_input_in_errors: a refused DD_SECRET_KEY or signing key must not be echoed into logs
    model_config = SettingsConfigDict(env_prefix="DD_", extra="ignore", hide_input_in_errors=True)

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
    onvif_subscription_s: float = Field(
        default=60.0, ge=1, description="Termination time asked for each ONVIF PullPoint subscription, s."
    )
    onvif_pull_timeout_s: float = Field(default=10.0, ge=1, description="Longest ONVIF PullMessages long poll, s.")
    onvif_silent_after_s: float = Field(
        default=60.0, gt=0, description="An ONVIF camera with no successful pull for this long is reported silent, s."
    )
    mqtt_url: str | None = Field(
        default=None, description="MQTT broker to subscribe to for incident reports, e.g. mqtt://127.0.0.1:1883."
    )
    secret_key: str = Field(
        default="",
        validate_default=True,
        description=f"Key that signs access tokens, at least {MIN_SECRET_KEY_CHARS} characters. Required with a "
        "database other than SQLite (every node must verify every token, after restarts too); with SQLite and "
        "none given, a random key lives as long as the process.",
    )
    token_ttl_minutes: int = Field(
        default=12 * 60, ge=1, description="Lifetime of a sign-in (its refresh token), minutes: then log in again."
    )
    access_token_ttl_minutes: float = Field(
        default=15, gt=0, description="Lifetime of an access token, minutes; the page refreshes it before it ends."
    )
    ingest_api_keys: list[str] = Field(
        default_factory=list,
        description="API keys accepted by POST /api/v1/ingest/webhook and /cap (X-API-Key) for any source, as before "
        "keys were kept in the database; keys made with `dronedispatch ingest-keys add` are each scoped to a source.",
    )
    signing_keys: dict[int, str] = Field(
        default_factory=dict,
        description="MAVLink 2 signing keys per system id, as 64 hex characters (32 bytes), "
        'e.g. {"1": "00112233…"}. A vehicle with a key is heard only when it signs with it.',
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
    bus_url: str = Field(
        default="",
        description="Event bus between service nodes: empty for one node (in-process), nats://HOST:PORT for several "
        "(NATS with JetStream: events, request/reply to the node holding a vehicle, leases on the MAVLink links).",
    )
    node_id: str = Field(
        default="",
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="This node's name among the nodes (letters, digits, - and _); default: host name and HTTP port.",
    )
    lease_ttl_s: float = Field(
        default=5.0,
        ge=1.0,
        le=60.0,
        description="Several nodes: a MAVLink link's lease lives this long unless its holder renews it; a node that "
        "dies loses its links to the others after about this long.",
    )
    recordings_dir: Path = Field(default=Path("var/recordings"), description="Where mission videos are kept.")
    timezone: str = Field(
        default="Asia/Seoul",
        description="The city's time zone (IANA name): statistics count hours of the day, days and weeks in it.",
    )
    public_flight_log: bool = Field(
        default=False,
        description="Serve the public flight log at /public/flights (no login): time, purpose, district, duration "
        "and a coarse track of each flight, nothing that identifies a person.",
    )
    web_dir: Path = Field(default=cityfiles.PROJECT_ROOT / "web", description="Static files of the operations view.")

    _secret_key_generated: bool = PrivateAttr(default=False)

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: str, info: ValidationInfo) -> str:
        if value:
            if len(value) < MIN_SECRET_KEY_CHARS:
                raise ValueError(
                    f"{len(value)} characters is too weak to sign tokens; use at least {MIN_SECRET_KEY_CHARS} "
                    "random ones, e.g. from: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
            return value
        database_url = info.data.get("database_url")
        if database_url is not None and not database_url.startswith("sqlite"):
            # API nodes keep no sessions: a token issued by one node must verify on every other and after restarts
            raise ValueError(
                "DD_SECRET_KEY is required when DD_DATABASE_URL is not SQLite: set the same random key of at least "
                f"{MIN_SECRET_KEY_CHARS} characters on every node, e.g. from: "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value  # "" here: _fill_secret_key makes one up for this process

    @model_validator(mode="after")
    def _fill_secret_key(self) -> Settings:
        if not self.secret_key:
            self.secret_key = secrets.token_urlsafe(32)
            self._secret_key_generated = True
        return self

    @field_validator("bus_url")
    @classmethod
    def _bus_url(cls, value: str) -> str:
        if not value:
            return value
        scheme, sep, rest = value.partition("://")
        host, _, port = rest.rpartition(":")
        if scheme != "nats" or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("give nats://HOST:PORT (e.g. nats://127.0.0.1:4222), or leave it empty for one node")
        return value

    @field_validator("mavlink")
    @classmethod
    def _connection_strings(cls, value: str) -> str:
        urls = connection_strings(value)
        if not urls:
            raise ValueError("give at least one MAVLink connection string, e.g. udpin:127.0.0.1:14550")
        for url in urls:
            parse_url(url)  # raises ValueError naming the accepted forms
        return value

    @field_validator("signing_keys")
    @classmethod
    def _signing_keys(cls, value: dict[int, str]) -> dict[int, str]:
        for sysid, key in value.items():
            signing_key_from_hex(sysid, key)  # raises ValueError saying what is wrong
        return value

    @property
    def secret_key_generated(self) -> bool:
        """No key was given and this process made one up: its tokens die with it."""
        return self._secret_key_generated

    @property
    def mavlink_urls(self) -> list[str]:
        return connection_strings(self.mavlink)

    @property
    def signing_key_bytes(self) -> dict[int, bytes]:
        return {sysid: signing_key_from_hex(sysid, key) for sysid, key in self.signing_keys.items()}
