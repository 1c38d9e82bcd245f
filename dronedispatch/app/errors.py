"""Why a service said no: typed errors with a reason a person can read.

Services raise these and know nothing of HTTP; ``dronedispatch.api.errors`` maps each kind to a
status in one table. ``code`` is stable for programs (and the view's translations), ``reason``
is for people.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every refusal; ``code`` is stable, ``reason`` says why in a sentence."""

    code = "refused"

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code


class UnknownObject(ServiceError):
    """The request names something that does not exist (a drone, a camera, a template)."""

    code = "unknown"


class Forbidden(ServiceError):
    """The account may not do this here (another district's incident, statistics of another district)."""

    code = "forbidden"


class Conflict(ServiceError):
    """The request is well formed but the present state forbids it (retrying later may work)."""

    code = "conflict"


class Unprocessable(ServiceError):
    """The request can never be carried out as given: an impossible mission, a bad plan or template."""

    code = "unprocessable"


class DispatchRefused(Conflict):
    """No mission was created: the incident is closed or served, no drone can go, or one was raced to it."""


class ImpossibleMission(Unprocessable):
    """The mission cannot be flown: no route round the airspace, a bad template or plan, no location."""


class CommandRejected(Conflict):
    """A pilot command that the mission's state or the vehicle refused."""


class VehicleUnavailable(Conflict):
    """The vehicle is not connected (or not held by this service)."""


class VehicleTimeout(ServiceError):
    """The vehicle did not answer in time; it may or may not have acted."""

    code = "vehicle_timeout"


class VideoUnavailable(Conflict):
    """No video from this drone right now (offline, no camera)."""


class VideoSourceFailed(ServiceError):
    """The drone's camera or stream failed to answer: a fault on the video path, not the request."""

    code = "video_source_failed"


class Gone(ServiceError):
    """What the request names existed but is no longer available (an expired or revoked share link)."""

    code = "gone"


class DockDoorFault(ServiceError):
    """A dock's door did not open or close: the dock reported a fault, or it did not finish in time."""

    code = "dock_door_fault"

    def __init__(self, dock_id: str, reason: str) -> None:
        super().__init__(f"dock {dock_id}: {reason}")
        self.dock_id = dock_id


class ServiceUnavailable(ServiceError):
    """A part the request needs is down for now (the database); retrying later may work."""

    code = "service_unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    """The database does not answer (stopped, restarting, unreachable): nothing was read or changed."""

    code = "database_unavailable"
