"""The REQUEST_MESSAGE exchange with a camera, driven message by message (no sockets)."""

from __future__ import annotations

import pytest
from pymavlink.dialects.v20 import common as mav

from dronedispatch.mavlink.camera import MSG_VIDEO_STREAM_INFORMATION, RequestMessageTransaction
from dronedispatch.mavlink.errors import CommandDenied, LinkError

GCS = 255


def ack(result: int = 0) -> mav.MAVLink_command_ack_message:
    return mav.MAVLink_command_ack_message(512, result, 0, 0, GCS, 190)


def stream_info() -> mav.MAVLink_video_stream_information_message:
    return mav.MAVLink_video_stream_information_message(
        1, 1, 1, 1, 30.0, 1280, 720, 4_000_000, 0, 90, b"main", b"udp://127.0.0.1:5600", 1
    )


def tx() -> RequestMessageTransaction:
    return RequestMessageTransaction(1, 100, MSG_VIDEO_STREAM_INFORMATION, our_system=GCS)


def sent_requests(out: list) -> list:
    return [m for m in out if m.get_type() == "COMMAND_LONG" and m.command == 512]


@pytest.mark.parametrize("order", [("ack", "msg"), ("msg", "ack")])
def test_done_when_both_ack_and_message_arrived_in_either_order(order: tuple[str, str]) -> None:
    t = tx()
    out = t.start(0.0)
    assert (
        sent_requests(out)[0].param1 == MSG_VIDEO_STREAM_INFORMATION and sent_requests(out)[0].target_component == 100
    )
    first, second = (ack() if o == "ack" else stream_info() for o in order)
    t.receive(first, 0.01)
    assert not t.done
    t.receive(second, 0.02)
    assert t.done and t.error is None
    assert t.result.get_type() == "VIDEO_STREAM_INFORMATION"


def test_lost_message_is_asked_again_after_the_ack() -> None:
    t = tx()
    t.start(0.0)
    t.receive(ack(), 0.01)
    assert t.deadline is not None
    out = t.on_timeout(t.deadline)
    assert len(sent_requests(out)) == 1, "asked again"
    t.receive(stream_info(), t.deadline + 0.01)
    t.receive(ack(), t.deadline + 0.02)
    assert t.done and t.error is None and t.asks == 2


def test_lost_ack_is_resent_by_the_command() -> None:
    t = tx()
    t.start(0.0)
    assert t.deadline is not None
    out = t.on_timeout(t.deadline)
    assert sent_requests(out)[0].confirmation == 1
    t.receive(stream_info(), 1.0)
    t.receive(ack(), 1.0)
    assert t.done and t.error is None


def test_refusal_fails_at_once_with_the_result() -> None:
    t = tx()
    t.start(0.0)
    t.receive(ack(result=3), 0.01)
    assert t.done and isinstance(t.error, CommandDenied) and t.error.result == 3


def test_camera_that_acks_but_never_answers_gives_a_clear_failure() -> None:
    t = tx()
    now = 0.0
    t.start(now)
    for _ in range(20):
        if t.done:
            break
        t.receive(ack(), now)
        now = t.deadline or now
        t.on_timeout(now)
    assert t.done and isinstance(t.error, LinkError)
    assert "never sent it" in str(t.error) and "VIDEO_STREAM_INFORMATION" in str(t.error)


def test_messages_of_other_kinds_and_other_commands_are_ignored() -> None:
    t = tx()
    t.start(0.0)
    t.receive(mav.MAVLink_command_ack_message(400, 0, 0, 0, GCS, 190), 0.01)
    t.receive(mav.MAVLink_heartbeat_message(2, 12, 0, 0, 0, 3), 0.01)
    assert not t.done
