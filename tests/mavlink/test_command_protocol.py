"""Command transaction: retries with confirmation, IN_PROGRESS, denial with text, cancel."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from pymavlink.dialects.v20 import common as mav

from dronedispatch.mavlink.command_protocol import CommandTransaction
from dronedispatch.mavlink.errors import CommandDenied, CommandTimeout
from tests.mavlink.harness import Channel, run_pair

P7 = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def ack(cmd: int, result: int, target: int = 255) -> mav.MAVLink_command_ack_message:
    return mav.MAVLink_command_ack_message(cmd, result, 0, 0, target, 190)


def test_lost_ack_resends_with_confirmation_incremented() -> None:
    tx = CommandTransaction(1, 1, 400, P7)
    first = tx.start(0.0)[0]
    assert first.get_type() == "COMMAND_LONG" and first.confirmation == 0
    second = tx.on_timeout(0.5)[0]
    assert second.confirmation == 1
    tx.receive(ack(400, 0), 0.6)
    assert tx.done and tx.result == 0 and tx.rtt_sample is None  # re-sent: no clean RTT


def test_ack_for_other_command_or_other_gcs_is_ignored() -> None:
    tx = CommandTransaction(1, 1, 400, P7)
    tx.start(0.0)
    tx.receive(ack(176, 0), 0.1)
    tx.receive(ack(400, 0, target=200), 0.1)
    assert not tx.done
    tx.receive(ack(400, 0), 0.2)
    assert tx.done and tx.rtt_sample == 0.2


def test_denial_carries_result_and_status_text() -> None:
    tx = CommandTransaction(1, 1, 400, P7)
    tx.start(0.0)
    tx.status_text = "Arming denied: Resolve system health failures first"
    tx.receive(ack(400, 1), 0.1)
    assert isinstance(tx.error, CommandDenied)
    assert tx.error.result == 1 and "Arming denied" in str(tx.error) and "temporarily rejected" in str(tx.error)


def test_in_progress_stops_resending_and_waits() -> None:
    tx = CommandTransaction(1, 1, 511, P7, in_progress_timeout_s=10)
    tx.start(0.0)
    tx.receive(ack(511, 5), 0.1)
    assert tx.deadline == 10.1 and not tx.done
    tx.receive(ack(511, 0), 3.0)
    assert tx.done and tx.result == 0


def test_gives_up_after_retries() -> None:
    tx = CommandTransaction(1, 1, 400, P7, max_retries=3)
    sent = len(tx.start(0.0))
    while not tx.done:
        assert tx.deadline is not None
        sent += len(tx.on_timeout(tx.deadline))
    assert sent == 4 and isinstance(tx.error, CommandTimeout)


def test_command_int_carries_scaled_position() -> None:
    tx = CommandTransaction(1, 1, 192, (-1, 1, 0, float("nan"), 37.5, 126.6, 120.0), use_int=True, frame=5)
    m = tx.start(0.0)[0]
    assert m.get_type() == "COMMAND_INT" and m.x == 375000000 and m.y == 1266000000 and m.z == 120.0 and m.frame == 5


def test_cancel_sends_command_cancel() -> None:
    tx = CommandTransaction(1, 1, 2500, P7)
    tx.start(0.0)
    out = tx.cancel()
    assert out[0].msgname == "COMMAND_CANCEL" and out[0].command == 2500
    assert isinstance(tx.error, CommandDenied) and tx.error.result == 6


class _AckingVehicle:
    """Answers every COMMAND_LONG with ACCEPTED, after an optional IN_PROGRESS."""

    def __init__(self, in_progress: bool) -> None:
        self.in_progress = in_progress
        self.deadline: float | None = None
        self.pending: list[float] = []
        self.seen = 0

    def receive(self, msg: object, now: float) -> list[object]:
        self.seen += 1
        cmd = msg.command  # type: ignore[attr-defined]
        if self.in_progress:
            return [ack(cmd, 5), ack(cmd, 0)]
        return [ack(cmd, 0)]

    def on_timeout(self, now: float) -> list[object]:
        return []

    def mission_current(self) -> object:
        return mav.MAVLink_heartbeat_message(2, 12, 29, 0, 3, 3)


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    loss=st.floats(min_value=0.0, max_value=0.4),
    in_progress=st.booleans(),
)
def test_command_under_loss_ends_accepted_or_timed_out_never_otherwise(
    seed: int, loss: float, in_progress: bool
) -> None:
    vehicle = _AckingVehicle(in_progress)
    tx = CommandTransaction(1, 1, 400, P7, in_progress_timeout_s=3.0)
    run_pair(tx, vehicle, Channel(random.Random(seed), loss, 0.0, 0.01, 0.01))  # type: ignore[arg-type]
    assert tx.done
    if tx.error is None:
        assert tx.result == 0 and vehicle.seen >= 1
    else:
        assert isinstance(tx.error, CommandTimeout)
    if loss < 0.2 and not in_progress:
        # six tries at 20 % loss each way: a timeout is possible but rare; both ends agree
        assert tx.attempts <= 6
