"""Share links: a view-only, expiring, revocable link to one incident for crews in the field.

The link carries a random token; the store keeps only its SHA-256, so the table alone opens
nothing. A token opens exactly one incident's state (category, time, position, the drone flying
it) and that drone's live video, and nothing else: it is not an access token of the API.
Creating and revoking are audited.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from dronedispatch.app.errors import Gone, UnknownObject, Unprocessable, VideoUnavailable
from dronedispatch.app.fleet import Fleet
from dronedispatch.store.models import Incident, Mission, Share

DEFAULT_HOURS = 2.0
MAX_HOURS = 24.0
TOKEN_BYTES = 32
_FLYING = ("launching", "enroute", "on_scene", "returning")


class ShareGone(Gone):
    """The link existed but no longer opens anything: it expired or was revoked."""

    code = "share_gone"

    def __init__(self, reason: str, why: str) -> None:
        super().__init__(reason)
        self.why = why  # "expired" | "revoked"


class ShareRepository(Protocol):
    def add_share(self, share: Share) -> Share: ...
    def get_share(self, share_id: str) -> Share: ...
    def share_by_token_hash(self, token_sha256: str) -> Share | None: ...
    def shares_of(self, incident_id: int) -> Sequence[Share]: ...
    def revoke_share(self, share_id: str, actor: str, at: datetime) -> Share: ...


class ShareIncidents(Protocol):
    def get_incident(self, incident_id: int) -> Incident: ...
    def list_missions(
        self, *, active: bool | None = None, incident_id: int | None = None, limit: int = 100, offset: int = 0
    ) -> Sequence[Mission]: ...
    def audit(self, actor: str, action: str, target_type: str, target_id: object, **detail: Any) -> None: ...


HangUp = Callable[[], Awaitable[None]]


class DroneVideo(Protocol):
    async def offer(
        self, drone_id: str, sdp: str, type_: str, on_viewer: Callable[[HangUp], None] | None = None
    ) -> tuple[str, str]: ...


@dataclass(frozen=True)
class NewShare:
    share: Share
    url: str  # the page's path, holding the token: shown once, never stored


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ShareService:
    def __init__(
        self,
        shares: ShareRepository,
        store: ShareIncidents,
        fleet: Fleet,
        video: DroneVideo,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._shares = shares
        self._store = store
        self._fleet = fleet
        self._video = video
        self._now = now
        # the live viewers each link opened on this node: hung up when it is revoked or expires
        self._viewers: dict[str, list[HangUp]] = {}
        self._tasks: set[asyncio.Future[None]] = set()

    # -- for signed-in users (blocking: call from a worker thread) ------------------------------
    def create(self, incident_id: int, hours: float, actor: str) -> NewShare:
        if not 0 < hours <= MAX_HOURS:
            raise Unprocessable(f"a share link lives more than 0 and at most {MAX_HOURS:g} hours", "bad_hours")
        incident = self._store.get_incident(incident_id)  # NotFound → 404
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._now()
        share = self._shares.add_share(
            Share(
                id=uuid.uuid4().hex,
                incident_id=incident_id,
                token_sha256=token_hash(token),
                created_by=actor,
                created_at=now,
                expires_at=now + timedelta(hours=hours),
            )
        )
        self._store.audit(actor, "share.create", "share", share.id, incident_id=incident.id, hours=hours,
                          expires_at=share.expires_at.isoformat())  # fmt: skip
        return NewShare(share, f"/share/{token}")

    async def revoke(self, share_id: str, actor: str) -> Share:
        """Revoke the link at once: its page and calls are refused, and its live viewers hung up."""
        share = await asyncio.to_thread(self._revoke, share_id, actor)
        await self._hang_up(share.id)
        return share

    def _revoke(self, share_id: str, actor: str) -> Share:
        share = self._shares.revoke_share(share_id, actor, self._now())  # NotFound → 404
        self._store.audit(actor, "share.revoke", "share", share.id, incident_id=share.incident_id)
        return share

    async def _hang_up(self, share_id: str) -> None:
        for hang_up in self._viewers.pop(share_id, []):
            await hang_up()

    def list(self, incident_id: int) -> Sequence[Share]:
        self._store.get_incident(incident_id)
        return self._shares.shares_of(incident_id)

    # -- for the link (blocking) ---------------------------------------------------------------
    def open(self, token: str) -> Share:
        """The share the token opens; :class:`UnknownObject` for no such link, :class:`ShareGone` when it
        expired or was revoked."""
        share = self._shares.share_by_token_hash(token_hash(token)) if token else None
        if share is None:
            raise UnknownObject("no such link", "unknown_share")
        if share.revoked_at is not None:
            raise ShareGone("This link was revoked.", "revoked")
        if self._now() >= share.expires_at:
            raise ShareGone("This link has expired.", "expired")
        return share

    def state(self, token: str) -> dict[str, Any]:
        """What the link's page shows: the incident, its current mission and that drone's position."""
        share = self.open(token)
        incident = self._store.get_incident(share.incident_id)
        mission = self._current_mission(incident.id or 0)
        drone: dict[str, Any] | None = None
        if mission is not None:
            entry = self._fleet.registry.get(mission.drone_id)
            if entry is not None:
                d = self._fleet.registry.public(entry)
                pos = d.position
                where = None if pos is None else {"lat": pos.lat, "lon": pos.lon, "alt": pos.alt}
                drone = {"id": d.id, "state": d.state, "heading": d.heading, "battery": d.battery, "position": where}
        return {
            "incident": {
                "category": incident.category,
                "severity": incident.severity,
                "status": incident.status,
                "created_at": incident.created_at.isoformat(),
                "location": {"lat": incident.lat, "lon": incident.lon},
            },
            "mission": None
            if mission is None
            else {
                "id": mission.id,
                "state": mission.state,
                "drone_id": mission.drone_id,
                "video": mission.state in _FLYING,
            },
            "drone": drone,
            "expires_at": share.expires_at.isoformat(),
        }

    def _current_mission(self, incident_id: int) -> Mission | None:
        active = self._store.list_missions(active=True, incident_id=incident_id, limit=1)
        if active:
            return active[0]
        latest = self._store.list_missions(incident_id=incident_id, limit=1)
        return latest[0] if latest else None

    async def offer(self, token: str, sdp: str, type_: str) -> tuple[str, str]:
        """WebRTC answer for the live video of the drone flying the shared incident now."""
        share = await asyncio.to_thread(self.open, token)
        mission = await asyncio.to_thread(self._current_mission, share.incident_id)
        if mission is None or mission.state not in _FLYING:
            raise VideoUnavailable("no drone is flying for this incident now", "no_flight")
        answer = await self._video.offer(
            mission.drone_id, sdp, type_, on_viewer=self._viewers.setdefault(share.id, []).append
        )
        # a viewer that keeps its connection past the link's end is hung up then, page or no page
        left_s = max(0.0, (share.expires_at - self._now()).total_seconds())
        asyncio.get_running_loop().call_later(left_s, self._expire, share.id)
        return answer

    def _expire(self, share_id: str) -> None:
        task = asyncio.ensure_future(self._hang_up(share_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
