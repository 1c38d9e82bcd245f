"""Mission transfer (upload, download, clear) as sans-I/O state machines.

Theory of operation
-------------------
Upload: we send MISSION_COUNT; the vehicle pulls each item with MISSION_REQUEST_INT(seq) and we
answer with MISSION_ITEM_INT(seq); after the last item the vehicle sends MISSION_ACK. The
vehicle drives the middle of the transfer (PX4 re-requests an item every ~250 ms when ours was
lost), so our timers matter only at the two ends, where a lost message would otherwise stall:

- COUNT sent, no request yet: re-send COUNT. PX4 answers a repeated COUNT before any item by
  requesting seq 0 again, so this is safe.
- Last item sent, no ACK: re-send the last item. PX4 answers it with the same ACCEPTED (and the
  same opaque_id) when its ACK was lost; MAVSDK does not do this and reports a timeout for a
  mission the vehicle holds. While we wait, a MISSION_CURRENT whose mission_id equals the
  checksum of our items is also proof the vehicle stored our plan.
- In the middle, silence for ``item_timeout_s`` means the vehicle stopped answering: re-send the
  last item (an out-of-order item is ignored by PX4), and give up after ``max_retries``.

A request for the item last asked for is answered again (a duplicate request means our item was
lost). A request for an earlier item than one already asked for is stale (it was delayed, or
crossed our item on the wire): the vehicle has that item, and once its transfer is over PX4 would
answer a copy with ERROR "No transfer", so it is counted and not answered. A request outside
0..count-1 is counted and ignored. An error ACK other than the generic ERROR fails the upload with
its meaning.

A generic ERROR is not a verdict on its own: PX4 sends it for a late copy of a COUNT ("Busy") while
carrying on with the transfer, for a copy of the last item after it finished ("No transfer"; the
last item again then brings back the ACCEPTED), and for any item once it has dropped the transfer
(after 5 s without hearing from us: a stall on the host or the link). So after a generic ERROR we
listen for a confirm window (re-sending the last item if all were sent): a request or an ACCEPTED
carries on or ends the transfer; silence means the vehicle has no transfer with us any more, and
the upload starts again from MISSION_COUNT, up to ``max_restarts`` times, before it fails with the
vehicle's ERROR. A restarted upload takes an ACCEPTED whose opaque_id is our plan's checksum
whenever it comes (it may answer the previous attempt: the vehicle holds our plan either way).

The timing: ``resend_s`` (default 0.25 s, at least 1.5 RTT) grows linearly with each retry up
to ``item_timeout_s`` (1.5 s, the MAVLink default) and ``max_retries`` (5) retries in a row
without any reply from the vehicle fail the transfer.

Fast retransmit: the machine measures the round trip from each item to the next request (only
for messages sent once). When nothing has come back after 3 smoothed round trips (at least
10 ms) it sends its last message once more at once, instead of waiting for PX4's 250 ms
re-request; PX4 ignores a copy of an item it already has (out of order) and answers a copy of
the last item with the same ACK, so the only cost of a spurious copy is one datagram.

Download: MISSION_REQUEST_LIST → MISSION_COUNT(n, opaque_id) → we request each item in turn →
MISSION_ITEM_INT → … → we send MISSION_ACK. Here we drive, so every step re-sends on timeout.
Clear: MISSION_CLEAR_ALL → MISSION_ACK, re-sent on timeout.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from pymavlink.dialects.v20 import common as mav

from dronedispatch.domain.mission_items import MissionItem, MissionType
from dronedispatch.mavlink.errors import UploadFailed
from dronedispatch.mavlink.transaction import Transaction
from dronedispatch.mavlink.wire import Prepacked

MAV_MISSION_ACCEPTED = 0
MAV_MISSION_ERROR = 1
ITEM_TIMEOUT_S = 1.5
RESEND_S = 0.25
MAX_RETRIES = 5
#: Times an upload starts again from MISSION_COUNT after the vehicle dropped the transfer.
MAX_RESTARTS = 2
#: PX4 drops a transfer it has not heard from for this long ("Operation timeout").
PX4_TRANSFER_TIMEOUT_S = 5.0
DOWNLOAD_MAX_RETRIES = 10
#: Re-send an unanswered COUNT or item after this many smoothed round trips (not before the minimum).
FAST_RTO_FACTOR = 3.0
FAST_RTO_MIN_S = 0.01


def mission_checksum(items: Sequence[MissionItem]) -> int:
    """PX4's opaque_id for a plan: CRC-32 (reflected, init 0, no final inversion) over items."""
    crc = 0
    for it in items:
        data = struct.pack(
            "<BHB4fiif",
            it.frame,
            it.command,
            1 if it.autocontinue else 0,
            it.param1,
            it.param2,
            it.param3,
            it.param4,
            it.x,
            it.y,
            it.alt,
        )
        # zlib's CRC-32 pre- and post-inverts; undo both to chain the raw register.
        crc = zlib.crc32(data, crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF
    return crc


def item_to_msg(item: MissionItem, seq: int, ts: int, tc: int, mission_type: int) -> Any:
    return mav.MAVLink_mission_item_int_message(
        ts,
        tc,
        seq,
        int(item.frame),
        int(item.command),
        0,
        1 if item.autocontinue else 0,
        item.param1,
        item.param2,
        item.param3,
        item.param4,
        item.x,
        item.y,
        item.alt,
        mission_type,
    )


def msg_to_item(m: Any) -> MissionItem:
    if m.get_type() == "MISSION_ITEM":  # float coordinates: only if a vehicle insists on it
        return MissionItem(
            command=m.command,
            lat=m.x,
            lon=m.y,
            alt=m.z,
            param1=m.param1,
            param2=m.param2,
            param3=m.param3,
            param4=m.param4,
            frame=m.frame,
            autocontinue=bool(m.autocontinue),
        )
    return MissionItem.from_int_fields(
        command=m.command,
        frame=m.frame,
        x=m.x,
        y=m.y,
        z=m.z,
        param1=m.param1,
        param2=m.param2,
        param3=m.param3,
        param4=m.param4,
        autocontinue=m.autocontinue,
    )


class _Transfer(Transaction):
    #: Retries in a row without any reply from the vehicle before the transfer fails.
    default_max_retries = MAX_RETRIES

    def __init__(
        self,
        target_system: int,
        target_component: int,
        mission_type: int = MissionType.MISSION,
        *,
        rtt_s: float | None = None,
        item_timeout_s: float = ITEM_TIMEOUT_S,
        resend_s: float = RESEND_S,
        max_retries: int | None = None,
    ) -> None:
        super().__init__()
        self.ts = target_system
        self.target_component = target_component
        self.mission_type = int(mission_type)
        self.item_timeout_s = item_timeout_s
        self.resend_s = max(resend_s, 1.5 * rtt_s) if rtt_s else resend_s
        self.max_retries = self.default_max_retries if max_retries is None else max_retries
        self.retries = 0
        self.resends = 0  # total, for statistics
        self.status_text: str | None = None

    def _backoff(self) -> float:
        return min(self.resend_s * (self.retries + 1), self.item_timeout_s)

    def _ours(self, msg: Any) -> bool:
        return getattr(msg, "mission_type", 0) == self.mission_type


class MissionUpload(_Transfer):
    """Upload ``items`` (an empty list clears). ``result`` is the vehicle's opaque_id."""

    poll_for_reply = True

    def __init__(
        self,
        target_system: int,
        target_component: int,
        items: Sequence[MissionItem],
        mission_type: int = MissionType.MISSION,
        *,
        rtt_s: float | None = None,
        item_timeout_s: float = ITEM_TIMEOUT_S,
        resend_s: float = RESEND_S,
        max_retries: int | None = None,
        max_restarts: int = MAX_RESTARTS,
    ) -> None:
        super().__init__(
            target_system,
            target_component,
            mission_type,
            rtt_s=rtt_s,
            item_timeout_s=item_timeout_s,
            resend_s=resend_s,
            max_retries=max_retries,
        )
        self.max_restarts = max_restarts
        self.restarts = 0
        self.items = list(items)
        self.count = len(self.items)
        self._packed: dict[int, Prepacked] = {}  # item messages, each built once (resends reuse it)
        self.phase = "count"  # count → items → ack
        self.highest_requested = -1
        self.last_sent_seq: int | None = None
        self.resends_of_count = 0
        self.pending_error: int | None = None
        # Fast retransmit: round trip of item → next request, measured in this transfer.
        self.srtt: float | None = rtt_s
        self.sent_at: float | None = None  # when the last message went out, if sent only once
        self.fast_pending = False
        self._normal_deadline = 0.0

    @cached_property
    def checksum(self) -> int:
        """The opaque_id PX4 will report for our items (computed only when needed)."""
        return mission_checksum(self.items)

    def _count_msg(self) -> Any:
        return mav.MAVLink_mission_count_message(self.ts, self.target_component, self.count, self.mission_type)

    def _packed_item(self, seq: int) -> Prepacked:
        msg = self._packed.get(seq)
        if msg is None:
            msg = self._packed[seq] = Prepacked.of(
                item_to_msg(self.items[seq], seq, self.ts, self.target_component, self.mission_type)
            )
        return msg

    def _item_msg(self, seq: int) -> Any:
        self.last_sent_seq = seq
        return self._packed_item(seq)

    def idle(self, now: float) -> None:
        # While the vehicle handles what we just sent, build the item it will ask for next, so
        # answering its request is only framing.
        if self.done:
            return
        nxt = 0 if self.last_sent_seq is None else self.last_sent_seq + 1
        if nxt < self.count:
            self._packed_item(nxt)
        elif self.count:
            _ = self.checksum  # for the ACK or a MISSION_CURRENT that confirms the plan

    def _fast_rto(self) -> float | None:
        return None if self.srtt is None else max(FAST_RTO_FACTOR * self.srtt, FAST_RTO_MIN_S)

    def _arm(self, now: float, normal: float) -> None:
        """Deadline for what we just sent: the normal one, or sooner for a fast retransmit."""
        fast = self._fast_rto()
        self.fast_pending = fast is not None and fast < normal
        self.deadline = now + (fast if self.fast_pending and fast is not None else normal)
        self._normal_deadline = now + normal

    def start(self, now: float) -> list[Any]:
        self.sent_at = now
        self._arm(now, self._backoff())
        return [self._count_msg()]

    def _restart(self, now: float) -> list[Any]:
        """The vehicle dropped our transfer: begin again with MISSION_COUNT (PX4 is idle by now)."""
        self.restarts += 1
        self.resends += 1
        self.phase = "count"
        self.highest_requested = -1
        self.last_sent_seq = None
        self.pending_error = None
        self.retries = 0
        return self.start(now)

    def receive(self, msg: Any, now: float) -> list[Any]:
        if self.done:
            return []
        t = msg.get_type()
        if t in ("MISSION_REQUEST_INT", "MISSION_REQUEST"):
            return self._on_request(msg, now)
        if t == "MISSION_ACK":
            return self._on_ack(msg, now)
        if t == "MISSION_CURRENT":
            return self._on_current(msg)
        return []

    def _on_request(self, msg: Any, now: float) -> list[Any]:
        if not self._ours(msg) or not 0 <= msg.seq < self.count:
            self.unexpected += 1
            return []
        if msg.seq < self.highest_requested:
            # Stale: the vehicle asked for a later item since, so it holds this one. Answering
            # would only cost a datagram while the transfer runs, and once PX4 has finished it
            # answers the copy with ERROR "No transfer".
            self.unexpected += 1
            return []
        self.retries = 0
        self.pending_error = None
        expected = 0 if self.last_sent_seq is None else self.last_sent_seq + 1
        if msg.seq == expected and self.sent_at is not None:
            # Only messages sent once give a clean sample (Karn's rule).
            sample = now - self.sent_at
            self.srtt = sample if self.srtt is None else 0.875 * self.srtt + 0.125 * sample
        if msg.seq > self.highest_requested:
            self.highest_requested = msg.seq
        if self.phase == "count":
            self.phase = "items"
        out = [self._item_msg(msg.seq)]
        self.sent_at = now
        if msg.seq == self.count - 1:
            self.phase = "ack"
            self._arm(now, self._backoff())
        else:
            self._arm(now, self.item_timeout_s)
        return out

    def _on_ack(self, msg: Any, now: float) -> list[Any]:
        if not self._ours(msg):
            self.unexpected += 1
            return []
        opaque = getattr(msg, "opaque_id", 0)
        if msg.type == MAV_MISSION_ACCEPTED:
            if self.count and self.phase != "ack" and not (self.restarts and opaque == self.checksum):
                # An ACCEPTED before we sent the last item belongs to an earlier transfer (unless it
                # names our plan and answers an earlier attempt of this upload).
                self.unexpected += 1
                return []
            return self._finish(opaque or (self.checksum if self.count else 0))
        if msg.type == MAV_MISSION_ERROR and self.phase in ("items", "ack"):
            # Not yet a verdict (see the module docstring): a request or an ACCEPTED within the
            # confirm window carries on; silence means the vehicle dropped the transfer.
            self.unexpected += 1
            if self.pending_error is not None:
                return []  # one window per silence: more ERRORs answer our earlier copies
            self.pending_error = msg.type
            self.deadline = now + self._confirm_window()
            if self.phase == "ack":
                # Perhaps the reply to a copy of our last item after PX4 accepted: the last item
                # again brings back the same ACCEPTED if so.
                return [self._item_msg(self.count - 1)]
            return []
        if msg.type == MAV_MISSION_ERROR and self.restarts:
            # Our new COUNT found the vehicle still in the transfer it had stopped answering
            # ("Busy"): PX4 drops that one after its timeout; then the next attempt begins.
            self.unexpected += 1
            if self.pending_error is None:
                self.pending_error = msg.type
                self.deadline = now + PX4_TRANSFER_TIMEOUT_S + self._confirm_window()
            return []
        return self._fail(UploadFailed("vehicle refused the mission", msg.type, self.status_text))

    def _confirm_window(self) -> float:
        # PX4 re-requests every ~250 ms while a transfer is alive; a few of those intervals of
        # silence tell a real refusal from a reply to a stale duplicate. On a slow host or link
        # the round trip measured in this transfer stretches it.
        return max(3 * self.resend_s, 0.75, 3 * (self.srtt or 0.0))

    def _on_current(self, msg: Any) -> list[Any]:
        mission_id = {0: "mission_id", 1: "fence_id", 2: "rally_points_id"}.get(self.mission_type)
        if (
            (self.phase == "ack" or self.restarts)
            and self.count
            and mission_id
            and getattr(msg, mission_id, 0) == self.checksum
        ):
            return self._finish(self.checksum)
        return []

    def on_timeout(self, now: float) -> list[Any]:
        if self.done:
            return []
        if self.pending_error is not None:
            if self.restarts < self.max_restarts:
                return self._restart(now)
            return self._fail(UploadFailed("vehicle refused the mission", self.pending_error, self.status_text))
        self.sent_at = None
        if self.fast_pending:
            # No reply within a few round trips: our message was probably lost. Send it again
            # now instead of waiting ~250 ms for PX4's re-request; a copy PX4 already has is
            # ignored as out of order (or, for the last item, answered with the same ACK).
            self.fast_pending = False
            self.resends += 1
            self.deadline = max(now, self._normal_deadline)
            return [self._resend_last()]
        self.retries += 1
        if self.retries > self.max_retries:
            where = {
                "count": "no MISSION_REQUEST for MISSION_COUNT",
                "items": f"vehicle stopped requesting items after item {self.highest_requested} of {self.count}",
                "ack": "no MISSION_ACK after the last item",
            }[self.phase]
            return self._fail(UploadFailed(f"upload timed out: {where}", None, self.status_text))
        self.resends += 1
        self.deadline = now + (self.item_timeout_s if self.phase == "items" else self._backoff())
        return [self._resend_last()]

    def _resend_last(self) -> Any:
        if self.phase == "count":
            self.resends_of_count += 1
            return self._count_msg()
        if self.phase == "ack":
            return self._item_msg(self.count - 1)
        assert self.last_sent_seq is not None
        return self._item_msg(self.last_sent_seq)


class MissionDownload(_Transfer):
    """Read the vehicle's plan. ``result`` is (items, opaque_id).

    Here every lost message costs one of our timeouts (the vehicle does not re-send), so the
    retry budget per step is larger than for uploads; a silent vehicle still fails within
    ``item_timeout_s`` per retry.
    """

    poll_for_reply = True
    default_max_retries = DOWNLOAD_MAX_RETRIES

    def __init__(
        self,
        target_system: int,
        target_component: int,
        mission_type: int = MissionType.MISSION,
        *,
        rtt_s: float | None = None,
        item_timeout_s: float = ITEM_TIMEOUT_S,
        resend_s: float = RESEND_S,
        max_retries: int | None = None,
    ) -> None:
        super().__init__(
            target_system,
            target_component,
            mission_type,
            rtt_s=rtt_s,
            item_timeout_s=item_timeout_s,
            resend_s=resend_s,
            max_retries=max_retries,
        )
        self.count: int | None = None
        self.opaque_id = 0
        self.items: list[MissionItem] = []

    def _next(self, now: float) -> list[Any]:
        self.deadline = now + self._backoff()
        if self.count is None:
            return [mav.MAVLink_mission_request_list_message(self.ts, self.target_component, self.mission_type)]
        return [
            mav.MAVLink_mission_request_int_message(self.ts, self.target_component, len(self.items), self.mission_type)
        ]

    def start(self, now: float) -> list[Any]:
        return self._next(now)

    def _ack(self, result: int) -> Any:
        return mav.MAVLink_mission_ack_message(self.ts, self.target_component, result, self.mission_type)

    def receive(self, msg: Any, now: float) -> list[Any]:
        if self.done or not self._ours(msg):
            return []
        t = msg.get_type()
        if t == "MISSION_COUNT":
            if self.count is not None:
                self.unexpected += 1  # a duplicate reply to a re-sent REQUEST_LIST
                return []
            self.count = msg.count
            self.opaque_id = getattr(msg, "opaque_id", 0)
            self.retries = 0
            if self.count == 0:
                self._finish(([], self.opaque_id))
                return [self._ack(MAV_MISSION_ACCEPTED)]
            return self._next(now)
        if t in ("MISSION_ITEM_INT", "MISSION_ITEM"):
            if self.count is None or msg.seq != len(self.items):
                self.unexpected += 1
                return []
            self.items.append(msg_to_item(msg))
            self.retries = 0
            if len(self.items) == self.count:
                self._finish((self.items, self.opaque_id))
                return [self._ack(MAV_MISSION_ACCEPTED)]
            return self._next(now)
        if t == "MISSION_ACK" and msg.type != MAV_MISSION_ACCEPTED:
            return self._fail(UploadFailed("vehicle refused the download", msg.type, self.status_text))
        return []

    def on_timeout(self, now: float) -> list[Any]:
        if self.done:
            return []
        self.retries += 1
        if self.retries > self.max_retries:
            step = "MISSION_COUNT" if self.count is None else f"item {len(self.items)} of {self.count}"
            return self._fail(UploadFailed(f"download timed out waiting for {step}", None, self.status_text))
        self.resends += 1
        return self._next(now)


class MissionClear(_Transfer):
    """MISSION_CLEAR_ALL for one mission type. ``result`` is the opaque_id (0)."""

    def _msg(self) -> Any:
        return mav.MAVLink_mission_clear_all_message(self.ts, self.target_component, self.mission_type)

    def start(self, now: float) -> list[Any]:
        self.deadline = now + self._backoff()
        return [self._msg()]

    def receive(self, msg: Any, now: float) -> list[Any]:
        if self.done or msg.get_type() != "MISSION_ACK" or not self._ours(msg):
            return []
        if msg.type == MAV_MISSION_ACCEPTED:
            return self._finish(getattr(msg, "opaque_id", 0))
        return self._fail(UploadFailed("vehicle refused to clear", msg.type, self.status_text))

    def on_timeout(self, now: float) -> list[Any]:
        if self.done:
            return []
        self.retries += 1
        if self.retries > self.max_retries:
            return self._fail(UploadFailed("clear timed out: no MISSION_ACK", None, self.status_text))
        self.resends += 1
        self.deadline = now + self._backoff()
        return [self._msg()]
