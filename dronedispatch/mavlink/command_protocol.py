"""Commands (COMMAND_LONG / COMMAND_INT) and their acknowledgement, sans-I/O.

Theory of operation
-------------------
We send the command and wait for COMMAND_ACK with the same command id. Without an ACK after
``timeout_s`` (at least 2 RTT) we re-send it: COMMAND_LONG with ``confirmation`` incremented (so
the vehicle can tell a retry from a new command), COMMAND_INT unchanged (it has no such field),
at most ``max_retries`` times. MAV_RESULT_IN_PROGRESS means the vehicle is working on it: stop
re-sending and wait up to ``in_progress_timeout_s`` for the final ACK (progress updates extend
the wait). ACCEPTED finishes with result 0; any other result fails with CommandDenied, carrying
the STATUSTEXT the vehicle sent meanwhile (PX4 explains refusals that way, e.g. "Arming denied:
…"). ``cancel()`` sends COMMAND_CANCEL and fails the transaction with MAV_RESULT_CANCELLED.

Only one command with a given id may be in flight per vehicle component, since the ACK names
only the command id; the owner serialises them.
"""

from __future__ import annotations

import math
from typing import Any

from pymavlink.dialects.v20 import common as mav

from dronedispatch.mavlink.errors import CommandDenied, CommandTimeout
from dronedispatch.mavlink.transaction import Transaction
from dronedispatch.mavlink.wire import CommandCancel

MAV_RESULT_ACCEPTED = 0
MAV_RESULT_IN_PROGRESS = 5
MAV_RESULT_CANCELLED = 6
COMMAND_TIMEOUT_S = 0.5
MAX_RETRIES = 5
IN_PROGRESS_TIMEOUT_S = 30.0


class CommandTransaction(Transaction):
    #: Our own system id, set by the owner (ACKs for other ground stations are ignored).
    our_system: int = 255

    def __init__(
        self,
        target_system: int,
        target_component: int,
        command: int,
        params: tuple[float, float, float, float, float, float, float],
        *,
        use_int: bool = False,
        frame: int = 0,
        rtt_s: float | None = None,
        timeout_s: float = COMMAND_TIMEOUT_S,
        max_retries: int = MAX_RETRIES,
        in_progress_timeout_s: float = IN_PROGRESS_TIMEOUT_S,
    ) -> None:
        super().__init__()
        self.ts = target_system
        self.target_component = target_component
        self.command = int(command)
        self.params = params
        self.use_int = use_int
        self.frame = frame
        self.timeout_s = max(timeout_s, 2.5 * rtt_s) if rtt_s else timeout_s
        self.max_retries = max_retries
        self.in_progress_timeout_s = in_progress_timeout_s
        self.confirmation = 0
        self.attempts = 0
        self.in_progress = False
        self.progress: int | None = None
        self.status_text: str | None = None
        self.sent_at: float | None = None
        #: Round trip of the first ACK that answered a single (not re-sent) command.
        self.rtt_sample: float | None = None

    def _msg(self) -> Any:
        p = self.params
        if self.use_int:
            # COMMAND_INT carries x/y as degrees * 1e7 in a global frame.
            x = 0 if math.isnan(p[4]) else round(p[4] * 1e7)
            y = 0 if math.isnan(p[5]) else round(p[5] * 1e7)
            return mav.MAVLink_command_int_message(
                self.ts, self.target_component, self.frame, self.command, 0, 0, p[0], p[1], p[2], p[3], x, y, p[6]
            )
        return mav.MAVLink_command_long_message(self.ts, self.target_component, self.command, self.confirmation, *p)

    def _send(self, now: float) -> list[Any]:
        self.attempts += 1
        self.sent_at = now
        self.deadline = now + self.timeout_s
        msg = self._msg()
        self.confirmation = min(self.confirmation + 1, 255)
        return [msg]

    def start(self, now: float) -> list[Any]:
        return self._send(now)

    def receive(self, msg: Any, now: float) -> list[Any]:
        if self.done or msg.get_type() != "COMMAND_ACK" or msg.command != self.command:
            return []
        # An ACK addressed to another ground station is not ours.
        target = getattr(msg, "target_system", 0)
        if target not in (0, self.our_system):
            return []
        if self.attempts == 1 and self.sent_at is not None and self.rtt_sample is None:
            self.rtt_sample = now - self.sent_at
        if msg.result == MAV_RESULT_IN_PROGRESS:
            self.in_progress = True
            self.progress = getattr(msg, "progress", None)
            self.deadline = now + self.in_progress_timeout_s
            return []
        if msg.result == MAV_RESULT_ACCEPTED:
            return self._finish(MAV_RESULT_ACCEPTED)
        return self._fail(CommandDenied(self.command, msg.result, self.status_text))

    def on_timeout(self, now: float) -> list[Any]:
        if self.done:
            return []
        if self.in_progress or self.attempts > self.max_retries:
            return self._fail(CommandTimeout(self.command, self.attempts))
        return self._send(now)

    def cancel(self) -> list[Any]:
        if self.done:
            return []
        self._fail(CommandDenied(self.command, MAV_RESULT_CANCELLED, "cancelled by ground station"))
        return [CommandCancel(self.ts, self.target_component, self.command)]
