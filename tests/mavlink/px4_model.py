"""A compact model of PX4's mission server (vehicle side), for driving our machines in tests.

Written from px4-wire-facts.md, independently of the simulator: re-requests the expected item
every 250 ms, gives up after 5 s of silence with "Operation timeout" (any item, even out of order,
breaks the silence), ignores out-of-order items,
answers an item while idle with ERROR, re-requests seq 0 on a repeated COUNT before any item and
refuses a COUNT after items ("Busy"), answers a re-sent last item of a finished upload with the
same ACCEPTED and opaque_id, and leaves the old plan in place when an upload is abandoned.
"""

from __future__ import annotations

from typing import Any

from pymavlink.dialects.v20 import common as mav

from dronedispatch.mavlink.mission_protocol import mission_checksum, msg_to_item

REREQUEST_S = 0.25
TIMEOUT_S = 5.0


def ack(result: int, mission_type: int, opaque_id: int = 0) -> Any:
    m = mav.MAVLink_mission_ack_message(255, 190, result, mission_type)
    m.opaque_id = opaque_id
    return m


class Px4MissionModel:
    def __init__(self, sysid: int = 1) -> None:
        self.sysid = sysid
        self.plan: list[Any] = []
        self.opaque_id = 0
        self.receiving = False
        self.count = 0
        self.expected = 0
        self.items: list[Any] = []
        self.deadline: float | None = None
        self.last_activity = 0.0
        self.last_finished: tuple[int, Any, int] | None = None  # (seq of last item, ack result, opaque)
        self.texts: list[str] = []
        self.mission_type = 0

    def _request(self, now: float) -> list[Any]:
        self.deadline = now + REREQUEST_S
        return [mav.MAVLink_mission_request_int_message(255, 190, self.expected, self.mission_type)]

    def receive(self, msg: Any, now: float) -> list[Any]:
        t = msg.get_type()
        if t == "MISSION_COUNT":
            if self.receiving and self.expected > 0:
                self.texts.append("WPM: REJ. CMD: Busy")
                return [ack(1, msg.mission_type)]
            if self.receiving:
                self.last_activity = now
                return self._request(now)
            if msg.count == 0:
                self.plan, self.opaque_id = [], 0
                return [ack(0, msg.mission_type, 0)]
            self.receiving, self.count, self.expected, self.items = True, msg.count, 0, []
            self.mission_type = msg.mission_type
            self.last_activity = now
            return self._request(now)
        if t == "MISSION_ITEM_INT":
            if not self.receiving:
                if self.last_finished and msg.seq == self.last_finished[0]:
                    return [ack(self.last_finished[1], msg.mission_type, self.last_finished[2])]
                self.texts.append("IGN MISSION_ITEM: No transfer")
                return [ack(1, msg.mission_type)]
            self.last_activity = now  # any item while receiving is a sign of life, in order or not (PX4)
            if msg.seq != self.expected:
                return []  # out of order: ignored silently
            self.items.append(msg_to_item(msg))
            self.expected += 1
            self.last_activity = now
            if self.expected == self.count:
                self.receiving = False
                self.deadline = None
                self.plan = self.items
                self.opaque_id = mission_checksum(self.plan)
                self.last_finished = (msg.seq, 0, self.opaque_id)
                return [ack(0, msg.mission_type, self.opaque_id)]
            return self._request(now)
        if t == "MISSION_CLEAR_ALL":
            self.plan, self.opaque_id = [], 0
            return [ack(0, msg.mission_type, 0)]
        return []

    def on_timeout(self, now: float) -> list[Any]:
        if not self.receiving:
            self.deadline = None
            return []
        if now - self.last_activity >= TIMEOUT_S:
            self.receiving = False
            self.deadline = None
            self.texts.append("Operation timeout")
            return []
        return self._request(now)

    def mission_current(self) -> Any:
        m = mav.MAVLink_mission_current_message(0, len(self.plan) or 65535, 2 if self.plan else 1, 2)
        m.mission_id = self.opaque_id
        return m
