"""Per-district access: which objects an account sees, in one place.

An account has a district scope (``users.district``); none means the whole city (the centre's
supervisors, testers and admins). A district account sees:

- incidents of its district (``incidents.district``), and what belongs to them: missions, records,
  evidence, coverage, share links, split reports, a mission's video;
- cameras and docks whose position lies in its district;
- drones whose home dock lies in its district, and any drone while it flies a mission for one of
  its district's incidents (dispatch takes the nearest suitable drone of the whole city);
- airspace, districts, templates: everything (they are the city's map).

An object of another district named by id is answered exactly as one that does not exist (404),
so ids reveal nothing. Creating an incident outside the district is refused (403) with the reason,
and statistics are held to the district. The WebSocket event stream applies the same rule per
connection (:class:`EventFilter`). Calls that read the store block: run them in a worker thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from dronedispatch.app.errors import Forbidden, UnknownObject, Unprocessable
from dronedispatch.bus import BusEvent
from dronedispatch.domain.assets import AssetRegistry
from dronedispatch.domain.districts import DistrictIndex
from dronedispatch.domain.fleet import Dock, DroneSpec
from dronedispatch.domain.incidents import LocationError, Report, locate_report
from dronedispatch.domain.scopes import district_problem
from dronedispatch.events import AlertRaised, DockChanged, DroneChanged, IncidentChanged, MissionChanged, Snapshot
from dronedispatch.store.models import Evidence, Incident, Mission, Share
from dronedispatch.store.repo import NotFound


@dataclass(frozen=True, slots=True)
class Scope:
    """What an account may see: one district, or (``district`` None) the whole city."""

    district: str | None = None

    @property
    def city_wide(self) -> bool:
        return self.district is None

    def sees(self, district: str | None) -> bool:
        """Whether an object placed in ``district`` (None: outside every district) is visible."""
        return self.district is None or district == self.district


CITY = Scope()


class AccessStore(Protocol):
    def get_incident(self, incident_id: int) -> Incident: ...
    def get_mission(self, mission_id: int) -> Mission: ...
    def get_evidence(self, evidence_id: int) -> Evidence: ...
    def list_missions(
        self,
        *,
        active: bool | None = None,
        incident_id: int | None = None,
        limit: int = 100,
        offset: int = 0,
        district: str | None = None,
    ) -> Sequence[Mission]: ...


class ShareLookup(Protocol):
    def get_share(self, share_id: str) -> Share: ...


class Access:
    """The district rule for every kind of object; routers and the event stream call it."""

    def __init__(
        self,
        store: AccessStore,
        shares: ShareLookup,
        districts: DistrictIndex,
        *,
        docks: Iterable[Dock],
        drones: Iterable[DroneSpec],
        cameras: AssetRegistry,
    ) -> None:
        self._store = store
        self._shares = shares
        self._index = districts
        self._known = frozenset(districts.ids)
        # positions never move while the service runs: their districts are read once
        self._dock_district = {d.id: districts.district_at(d.lat, d.lon) for d in docks}
        self._home_district = {d.id: self._dock_district.get(d.dock) for d in drones}
        self._cameras = cameras
        self._camera_district = {c.id: districts.district_at(c.lat, c.lon) for c in cameras.cameras}

    # -- accounts --------------------------------------------------------------------------------
    def check_assignable(self, district: str | None, role: str) -> None:
        """:class:`UnknownDistrict` (422) when ``district`` is not one of the city's, or when an account
        of ``role`` works for the whole city."""
        problem = district_problem(district, role, self._known)
        if problem is not None:
            raise UnknownDistrict(problem)

    @property
    def known_districts(self) -> frozenset[str]:
        return self._known

    # -- one object by id: as if it did not exist when out of scope --------------------------------
    def incident(self, scope: Scope, incident_id: int) -> None:
        if not scope.city_wide and not scope.sees(self._store.get_incident(incident_id).district):
            raise NotFound("incident", incident_id)

    def mission(self, scope: Scope, mission_id: int) -> None:
        if scope.city_wide:
            return
        if not self._incident_visible(scope, self._store.get_mission(mission_id).incident_id):
            raise NotFound("mission", mission_id)

    def evidence(self, scope: Scope, evidence_id: int) -> None:
        if scope.city_wide:
            return
        e = self._store.get_evidence(evidence_id)
        incident_id = e.incident_id
        if incident_id is None and e.mission_id is not None:
            incident_id = self._store.get_mission(e.mission_id).incident_id
        if incident_id is None or not self._incident_visible(scope, incident_id):
            raise NotFound("evidence", evidence_id)

    def share(self, scope: Scope, share_id: str) -> None:
        if not scope.city_wide and not self._incident_visible(scope, self._shares.get_share(share_id).incident_id):
            raise NotFound("share", share_id)

    def drone(self, scope: Scope, drone_id: str) -> None:
        if scope.city_wide or drone_id not in self._home_district:  # an unknown drone: its route says so
            return
        if drone_id not in self.visible_drones(scope):
            raise UnknownObject(f"drone {drone_id!r} does not exist", "unknown_drone")

    def camera(self, scope: Scope, camera_id: str) -> None:
        if scope.city_wide or camera_id not in self._camera_district:
            return
        if not scope.sees(self._camera_district[camera_id]):
            raise UnknownObject(f"camera {camera_id!r} does not exist", "unknown_camera")

    # -- lists -----------------------------------------------------------------------------------
    def visible_drones(self, scope: Scope) -> set[str]:
        """Drones at home in the district, and those flying for one of its incidents."""
        if scope.city_wide:
            return set(self._home_district)
        flying = {m.drone_id for m in self._store.list_missions(active=True, limit=10_000, district=scope.district)}
        return {d for d, home in self._home_district.items() if scope.sees(home)} | flying

    def dock_visible(self, scope: Scope, dock_id: str) -> bool:
        return scope.sees(self._dock_district.get(dock_id))

    def camera_visible(self, scope: Scope, camera_id: str) -> bool:
        return scope.sees(self._camera_district.get(camera_id))

    def visible_incidents(self, scope: Scope, incident_ids: Iterable[object]) -> set[object]:
        """Those of ``incident_ids`` the scope sees (unknown ones left out)."""
        ids = set(incident_ids)
        if scope.city_wide:
            return ids
        return {i for i in ids if isinstance(i, int) and self._incident_visible(scope, i)}

    # -- writes and statistics --------------------------------------------------------------------
    def check_report(self, scope: Scope, report: Report) -> None:
        """403 with the reason when ``report`` (an operator's new incident) lies outside the district."""
        if scope.city_wide:
            return
        try:
            located = locate_report(report, self._cameras)
        except LocationError:
            return  # the dispatcher refuses it with its own reason
        assert located.lat is not None and located.lon is not None
        district = self._index.district_at(located.lat, located.lon)
        if not scope.sees(district):
            where = f"in {district}" if district else "outside every district"
            raise Forbidden(
                f"the incident lies {where}; this account works for {scope.district} only", "outside_district"
            )

    def stats_district(self, scope: Scope, asked: str | None) -> str | None:
        """The district statistics are computed for: the one asked, held to the account's own."""
        if scope.city_wide or asked in (None, scope.district):
            return asked if scope.city_wide else scope.district
        raise Forbidden(f"this account sees statistics of {scope.district} only", "outside_district")

    # -- the event stream ------------------------------------------------------------------------
    def event_filter(self, scope: Scope) -> EventFilter:
        return EventFilter(self, scope)

    def _incident_visible(self, scope: Scope, incident_id: int) -> bool:
        try:
            return scope.sees(self._store.get_incident(incident_id).district)
        except NotFound:
            return False

    def _mission_visible(self, scope: Scope, mission_id: int) -> bool:
        try:
            return self._incident_visible(scope, self._store.get_mission(mission_id).incident_id)
        except NotFound:
            return False

    def home_district(self, drone_id: str) -> str | None:
        return self._home_district.get(drone_id)

    def dock_district(self, dock_id: str) -> str | None:
        return self._dock_district.get(dock_id)


class UnknownDistrict(Unprocessable):
    """An account was given a district that does not exist or that its role cannot take."""

    code = "unknown_district"


class EventFilter:
    """The district rule for one event-stream connection.

    It decides from what it has already seen (incidents carry their district, missions their
    incident, drones their mission), without I/O, for nearly every event: :meth:`decide` returns
    None only for a mission it has not met yet, which :meth:`resolve` looks up in the store (blocking:
    in a worker thread) once, remembering the answer.
    """

    def __init__(self, access: Access, scope: Scope) -> None:
        self._access = access
        self._scope = scope
        self._incidents: dict[int, bool] = {}  # incident id -> visible
        self._missions: dict[int, bool] = {}  # mission id -> visible
        self._flying: dict[str, int | None] = {}  # drone id -> the mission it flies, as last seen

    @property
    def scope(self) -> Scope:
        return self._scope

    def snapshot(self, snap: Snapshot) -> Snapshot:
        """The connection's snapshot: only what the scope sees (blocking: may read the store)."""
        if self._scope.city_wide:
            return snap
        for i in snap.incidents:
            self._incidents[i.id] = self._scope.sees(i.district)
        flying = {}  # drone id -> the active mission it flies, as the store has it
        for m in snap.missions:
            self._missions[m.id] = self._incident(m.incident_id)
            flying[m.drone_id] = m.id
        visible_drones = [d for d in snap.drones if self._drone(d.id, d.dock_id, d.mission_id or flying.get(d.id))]
        return Snapshot(
            drones=visible_drones,
            incidents=[i for i in snap.incidents if self._incidents[i.id]],
            missions=[m for m in snap.missions if self._missions[m.id]],
        )

    def decide(self, event: BusEvent) -> bool | None:
        """Whether the connection gets ``event``; None when a mission must be looked up first."""
        scope = self._scope
        if scope.city_wide:
            return True
        if isinstance(event, IncidentChanged):
            self._incidents[event.data.id] = visible = scope.sees(event.data.district)
            return visible
        if isinstance(event, MissionChanged):
            m = event.data
            if m.incident_id not in self._incidents:
                return None
            self._missions[m.id] = self._incidents[m.incident_id]
            return self._missions[m.id]
        if isinstance(event, DroneChanged):
            d = event.data
            self._flying[d.id] = d.mission_id
            if scope.sees(self._access.home_district(d.id)):
                return True
            if d.mission_id is None:
                return False
            return self._missions.get(d.mission_id)
        if isinstance(event, AlertRaised):
            a = event.data
            if a.mission_id is not None:
                return self._missions.get(a.mission_id)
            if a.drone_id is not None:
                if scope.sees(self._access.home_district(a.drone_id)):
                    return True
                flying = self._flying.get(a.drone_id)
                return flying is not None and self._missions.get(flying, False)
            return False  # an alert of no drone and no mission concerns the centre: supervisors only
        if isinstance(event, DockChanged):
            return scope.sees(self._access.dock_district(event.data.dock_id))
        return False  # a kind of event this rule does not know yet is kept from district accounts

    def resolve(self, event: BusEvent) -> bool:
        """:meth:`decide` after reading the store for the mission or incident it did not know (blocking)."""
        if isinstance(event, MissionChanged):
            self._incident(event.data.incident_id)
        elif isinstance(event, DroneChanged) and event.data.mission_id is not None:
            self._mission(event.data.mission_id)
        elif isinstance(event, AlertRaised) and event.data.mission_id is not None:
            self._mission(event.data.mission_id)
        return bool(self.decide(event))

    def _incident(self, incident_id: int) -> bool:
        if incident_id not in self._incidents:
            self._incidents[incident_id] = self._access._incident_visible(self._scope, incident_id)
        return self._incidents[incident_id]

    def _mission(self, mission_id: int) -> bool:
        if mission_id not in self._missions:
            self._missions[mission_id] = self._access._mission_visible(self._scope, mission_id)
        return self._missions[mission_id]

    def _drone(self, drone_id: str, dock_id: str, mission_id: int | None) -> bool:
        self._flying[drone_id] = mission_id
        home = self._access.home_district(drone_id) or self._access.dock_district(dock_id)
        return self._scope.sees(home) or (mission_id is not None and self._mission(mission_id))
