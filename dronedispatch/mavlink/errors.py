"""Typed failures of the vehicle link; the API maps them to HTTP in one place."""

from __future__ import annotations

MAV_RESULT_TEXT = {
    0: "accepted",
    1: "temporarily rejected",
    2: "denied",
    3: "unsupported",
    4: "failed",
    5: "in progress",
    6: "cancelled",
    7: "only accepted as COMMAND_LONG",
    8: "only accepted as COMMAND_INT",
    9: "unsupported frame",
}

MAV_MISSION_RESULT_TEXT = {
    0: "accepted",
    1: "generic error / not accepting mission commands now",
    2: "coordinate frame not supported",
    3: "command not supported",
    4: "mission does not fit in the vehicle's storage",
    5: "a parameter is invalid",
    6: "param1 invalid",
    7: "param2 invalid",
    8: "param3 invalid",
    9: "param4 invalid",
    10: "x / param5 invalid",
    11: "y / param6 invalid",
    12: "z / param7 invalid",
    13: "mission item received out of sequence",
    14: "not accepting any mission commands from this source",
    15: "current mission operation cancelled",
}


def mission_result_text(result: int | None) -> str:
    if result is None:
        return "no acknowledgement"
    return MAV_MISSION_RESULT_TEXT.get(result, f"unknown result {result}")


class LinkError(Exception):
    """Base of every vehicle-link failure."""


class VehicleNotFound(LinkError):
    def __init__(self, sysid: int) -> None:
        super().__init__(f"vehicle {sysid} not heard on any link")
        self.sysid = sysid


class LinkFenced(LinkError):
    """This ground station may not send to the vehicle now: another holds its link (lease lost)."""

    def __init__(self, sysid: int) -> None:
        super().__init__(f"this node no longer holds the link to vehicle {sysid}; another node sends to it now")
        self.sysid = sysid


class CommandDenied(LinkError):
    """The vehicle answered a command with a result other than ACCEPTED."""

    def __init__(self, command: int, result: int, text: str | None = None) -> None:
        meaning = MAV_RESULT_TEXT.get(result, f"result {result}")
        msg = f"command {command} {meaning}"
        if text:
            msg += f": {text}"
        super().__init__(msg)
        self.command = command
        self.result = result
        self.text = text


class CommandTimeout(LinkError):
    def __init__(self, command: int, attempts: int) -> None:
        super().__init__(f"command {command} got no COMMAND_ACK after {attempts} attempts")
        self.command = command
        self.attempts = attempts


class UploadFailed(LinkError):
    """A mission transfer (upload, download or clear) did not complete.

    ``ack_result`` is the MAV_MISSION_RESULT the vehicle sent, or None when it stopped answering.
    """

    def __init__(self, reason: str, ack_result: int | None = None, text: str | None = None) -> None:
        msg = reason
        if ack_result is not None:
            msg += f" (MISSION_ACK {ack_result}: {mission_result_text(ack_result)})"
        if text:
            msg += f"; vehicle said: {text}"
        super().__init__(msg)
        self.reason = reason
        self.ack_result = ack_result
        self.meaning = mission_result_text(ack_result)
        self.text = text


class ParamError(LinkError):
    pass
