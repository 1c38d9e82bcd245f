"""Tables of the store. The database is the one source of truth: nothing that a restart or a
second node would need lives only in memory.

JSON columns hold structures the service owns (mission items, checks, raw reports) so that a
schema change to them is a code change, not a migration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, LargeBinary, Text, text
from sqlmodel import Field, SQLModel

# A mission in one of these states holds its drone and its incident: the partial unique indexes
# on ``missions`` allow at most one such mission per drone and per incident.
ACTIVE_MISSION_STATES = ("planned", "uploading", "launching", "enroute", "on_scene", "returning")
_ACTIVE_WHERE = "state IN ({})".format(", ".join(f"'{s}'" for s in ACTIVE_MISSION_STATES))
ACTIVE_DRONE_INDEX = "uq_missions_active_drone"
ACTIVE_INCIDENT_INDEX = "uq_missions_active_incident"
# A relief mission (continuous overwatch) flies to its incident while the mission it relieves is
# still there: the incident index counts only missions that relieve none (revision 0006).
_NOT_RELIEF_WHERE = " AND relieves_mission_id IS NULL"
COVERAGE_MODES = ("none", "duration", "until_closed")


def utcnow() -> datetime:
    return datetime.now(UTC)


class User(SQLModel, table=True):
    __tablename__ = "users"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True, max_length=64)
    password_hash: str
    role: str = Field(max_length=16)
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    # the one district the account works for; None: the whole city (revision 0010)
    district: str | None = Field(default=None, max_length=32)


class Incident(SQLModel, table=True):
    __tablename__ = "incidents"
    # statistics filtered by district over a period; response times of a period from the index alone (revision 0005)
    __table_args__ = (
        Index("ix_incidents_district_created_at", "district", "created_at"),
        Index(
            "ix_incidents_response_times",
            "created_at",
            "district",
            "category",
            "dispatch_s",
            "airborne_s",
            "on_scene_s",
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    category: str = Field(max_length=32, index=True)
    severity: int = 2
    status: str = Field(default="open", max_length=16, index=True)
    lat: float
    lon: float
    area: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    camera_id: str | None = Field(default=None, max_length=64)
    source: str = Field(max_length=32)
    description: str = ""
    approval_ref: str | None = Field(default=None, max_length=128)
    outcome: str | None = None
    # the structured close (revision 0005): cleared_without_patrol | escalated | false_alarm | other,
    # and who reached the scene first: drone | patrol | none
    outcome_code: str | None = Field(default=None, max_length=32)
    first_on_scene: str | None = Field(default=None, max_length=16)
    # seconds from the report to its first mission's dispatch, launch and arrival on scene: a summary of
    # ``missions`` kept by the statistics (dronedispatch/store/stats.py refreshes it), revision 0005
    dispatch_s: float | None = None
    airborne_s: float | None = None
    on_scene_s: float | None = None
    report_count: int = 1
    # the district whose outline holds the incident (city districts file), for statistics and access
    district: str | None = Field(default=None, max_length=32, index=True)
    # set when an operator split this incident's first report out of another incident (an id of
    # ``incidents``; no foreign key, which SQLite cannot add to an existing table in place)
    split_from_id: int | None = None
    # continuous overwatch (revision 0006): none | duration | until_closed; a duration's end is known once
    # the first drone is on scene (coverage_until), and which drone covers the scene now, so video follows it
    coverage_mode: str = Field(default="none", max_length=16, sa_column_kwargs={"server_default": "none"})
    coverage_s: float | None = None
    coverage_until: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    on_scene_drone_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True), index=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    closed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class IncidentReport(SQLModel, table=True):
    """Every report as received, kept even when it merged into an existing incident."""

    __tablename__ = "incident_reports"
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True)
    source: str = Field(max_length=32)
    source_ref: str | None = Field(default=None, max_length=128)
    category: str = Field(max_length=32)
    severity: int = 2
    lat: float | None = None
    lon: float | None = None
    camera_id: str | None = Field(default=None, max_length=64)
    description: str = ""
    observed_at: datetime = Field(sa_type=DateTime(timezone=True))
    received_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    raw: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    # metres from the incident's position when the report joined it (0 for the report that formed it)
    distance_m: float | None = None


def _active_unique(name: str, column: str, also: str = "") -> Index:
    where = text(_ACTIVE_WHERE + also)
    return Index(name, column, unique=True, sqlite_where=where, postgresql_where=where)


class Mission(SQLModel, table=True):
    __tablename__ = "missions"
    __table_args__ = (
        _active_unique(ACTIVE_DRONE_INDEX, "drone_id"),
        _active_unique(ACTIVE_INCIDENT_INDEX, "incident_id", _NOT_RELIEF_WHERE),
        # flight hours and utilisation per period read missions by launch time; response times read an
        # incident's first dispatch, launch and arrival from the index alone (revision 0005)
        Index("ix_missions_launched_at", "launched_at"),
        Index("ix_missions_incident_times", "incident_id", "created_at", "launched_at", "on_scene_at"),
        # the missions changed since the statistics last refreshed their summary of response times
        Index("ix_missions_updated_at", "updated_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True)
    drone_id: str = Field(max_length=64, index=True)
    sysid: int
    state: str = Field(default="planned", max_length=16, index=True)
    reason: str | None = None
    template: str = Field(max_length=64)
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    items: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    on_scene_seq: int = 0
    # PX4's mission CRC: unsigned 32-bit, beyond a signed INTEGER. SQLite's INTEGER already holds
    # 64 bits, and keeping its declaration spares a rebuild of the table there.
    opaque_id: int | None = Field(default=None, sa_type=BigInteger().with_variant(Integer(), "sqlite"))
    airspace_check: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    # the recording being written for this mission (an Evidence row appears once it is closed)
    recording_path: str | None = None
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    launched_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    on_scene_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    ended_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    # battery percentage points the mission used (first minus last telemetry sample), kept once it
    # ended so battery cycles need not read the samples again (revision 0005)
    battery_used_pct: float | None = None
    # continuous overwatch (revision 0006): the mission this one takes the scene over from, and when
    # this one's drone left the scene (handed over, sent home, or the mission ended)
    relieves_mission_id: int | None = None
    left_scene_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class Drone(SQLModel, table=True):
    """What the service itself knows about a drone of the fleet file (the file has the rest)."""

    __tablename__ = "drones"
    id: str = Field(primary_key=True, max_length=64)  # the fleet file's drone id
    maintenance: bool = False
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class AuditEntry(SQLModel, table=True):
    """Append-only: who did what, when. Rows are never updated or deleted."""

    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True), index=True)
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64, index=True)
    target_type: str = Field(max_length=32)
    target_id: str = Field(max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    # the hash chain (revision 0007, dronedispatch/store/audit_chain.py): the previous entry's hash, and
    # the SHA-256 of this entry's content with it; set when the entry is flushed, never by callers
    prev_hash: str = Field(default="", max_length=64)
    entry_hash: str = Field(default="", max_length=64)


class AuditChainHead(SQLModel, table=True):
    """One row: the newest entry of the audit log's hash chain. Appends lock it, so entries are
    chained one after another across every node; a log cut short no longer ends where it says."""

    __tablename__ = "audit_chain_head"
    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    last_id: int = 0
    last_hash: str = Field(max_length=64)


class IngestKey(SQLModel, table=True):
    """An API key of one ingest source (revision 0007): only its SHA-256 is kept, so the table alone
    opens nothing; revoked keys stay listed for the record."""

    __tablename__ = "ingest_keys"
    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32, index=True)
    key_sha256: str = Field(max_length=64, unique=True)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    revoked_by: str | None = Field(default=None, max_length=64)
    last_used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class Evidence(SQLModel, table=True):
    """A file kept as evidence of a mission: its video recording, telemetry subtitles, snapshots.

    The SHA-256 is taken when the file is closed and also written to the audit log, so a file
    changed later can be told from the original.
    """

    __tablename__ = "evidence"
    id: int | None = Field(default=None, primary_key=True)
    mission_id: int | None = Field(default=None, foreign_key="missions.id", index=True)
    incident_id: int | None = Field(default=None, foreign_key="incidents.id", index=True)
    kind: str = Field(max_length=16)  # recording | subtitles | snapshot
    path: str
    media_type: str = Field(max_length=64)
    sha256: str = Field(max_length=64)
    size_bytes: int = Field(sa_type=BigInteger)
    duration_s: float | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class TelemetrySample(SQLModel, table=True):
    """A drone's position and battery during a mission, about once a second: the flown track."""

    __tablename__ = "telemetry_samples"
    __table_args__ = (Index("ix_telemetry_samples_mission_at", "mission_id", "at"),)
    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger().with_variant(Integer(), "sqlite"))
    mission_id: int = Field(foreign_key="missions.id")
    drone_id: str = Field(max_length=64)
    at: datetime = Field(sa_type=DateTime(timezone=True))
    lat: float
    lon: float
    alt_m: float  # above the home position
    battery_pct: float | None = None
    speed_ms: float | None = None


class Share(SQLModel, table=True):
    """A view-only link to one incident for crews in the field: expiring, revocable, audited.

    Only the SHA-256 of the link's token is kept, so the table alone opens nothing.
    """

    __tablename__ = "shares"
    id: str = Field(primary_key=True, max_length=32)
    incident_id: int = Field(foreign_key="incidents.id", index=True)
    token_sha256: str = Field(max_length=64, unique=True)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    revoked_by: str | None = Field(default=None, max_length=64)


class LoginThrottle(SQLModel, table=True):
    """Failed logins of one account or one client address (revision 0008), shared by every node.

    ``failures`` counts the failures since ``window_start``; enough of them lock the key until
    ``locked_until``, each lockout (``lockouts``) longer than the one before.
    """

    __tablename__ = "login_throttle"
    __table_args__ = (Index("ix_login_throttle_kind_key", "kind", "key", unique=True),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # account | address
    key: str = Field(max_length=128)
    failures: int = 0
    window_start: datetime = Field(sa_type=DateTime(timezone=True))
    last_failure_at: datetime = Field(sa_type=DateTime(timezone=True))
    locked_until: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    lockouts: int = 0


class LoginSession(SQLModel, table=True):
    """One sign-in (revision 0008): its current refresh token (SHA-256 only; it rotates at every
    refresh) and the one before it, so a replayed old token is recognised and ends the session.
    Access tokens name their session, so revoking it stops them at once on every node."""

    __tablename__ = "login_sessions"
    id: str = Field(primary_key=True, max_length=32)
    username: str = Field(max_length=64, index=True)
    refresh_sha256: str = Field(max_length=64, unique=True)
    previous_sha256: str | None = Field(default=None, max_length=64, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    refreshed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    revoked_reason: str | None = Field(default=None, max_length=64)


class WsTicket(SQLModel, table=True):
    """A one-use ticket that opens the event WebSocket (revision 0008): seconds long, SHA-256 only."""

    __tablename__ = "ws_tickets"
    ticket_sha256: str = Field(primary_key=True, max_length=64)
    username: str = Field(max_length=64)
    session_id: str | None = Field(default=None, max_length=32)
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))


# -- statistics summary (revision 0009; written and read by dronedispatch/store/stats.py) ------------
# the incidents and missions changed since the summary's last refresh
Index("ix_incidents_updated_at", Incident.updated_at)  # type: ignore[arg-type]


class StatsIncident(SQLModel, table=True):
    """One incident as the statistics read it: local day and hour, keys, outcome, response times."""

    __tablename__ = "stats_incidents"
    __table_args__ = (
        Index("ix_stats_incidents_incident_id", "incident_id", unique=True),
        Index("ix_stats_incidents_day", "day"),
        {"sqlite_with_rowid": False},  # clustered by (created_at, incident_id): a period lies together
    )
    created_at: datetime = Field(primary_key=True, sa_type=DateTime(timezone=True))
    incident_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    day: int  # the city's local day, days since 1970-01-01
    hour: int  # the city's local hour
    district: str | None = Field(default=None, max_length=32)
    category: str = Field(max_length=32)
    source: str = Field(max_length=32)
    camera_id: str | None = Field(default=None, max_length=64)
    closed: bool
    outcome_code: str | None = Field(default=None, max_length=32)
    first_on_scene: str | None = Field(default=None, max_length=16)
    report_to_dispatch: float | None = None
    dispatch_to_airborne: float | None = None
    airborne_to_on_scene: float | None = None
    report_to_on_scene: float | None = None
    lat: float
    lon: float


class StatsDaily(SQLModel, table=True):
    """One local day of incidents packed for the statistics (see ``store.stats._pack``)."""

    __tablename__ = "stats_daily"
    day: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    incidents: int
    districts: str = Field(sa_type=Text)  # JSON list of the day's district names
    categories: str = Field(sa_type=Text)
    sources: str = Field(sa_type=Text)  # JSON list of the day's [source, camera] pairs
    district_codes: bytes = Field(sa_type=LargeBinary)
    category_codes: bytes = Field(sa_type=LargeBinary)
    source_codes: bytes = Field(sa_type=LargeBinary)
    hours: bytes = Field(sa_type=LargeBinary)
    outcomes: bytes = Field(sa_type=LargeBinary)
    firsts: bytes = Field(sa_type=LargeBinary)
    false_alarms: bytes = Field(sa_type=LargeBinary)
    report_to_dispatch: bytes = Field(sa_type=LargeBinary)
    dispatch_to_airborne: bytes = Field(sa_type=LargeBinary)
    airborne_to_on_scene: bytes = Field(sa_type=LargeBinary)
    report_to_on_scene: bytes = Field(sa_type=LargeBinary)
    lats: bytes = Field(sa_type=LargeBinary)
    lons: bytes = Field(sa_type=LargeBinary)


class StatsState(SQLModel, table=True):
    """The summary's one row: the local offset it was built for (None: never) and its last refresh."""

    __tablename__ = "stats_state"
    id: int | None = Field(default=None, primary_key=True)
    offset_min: int | None = None
    refreshed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
