"""Framing, signing, PX4 mode names and state folding: the pure pieces under the link."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymavlink.dialects.v20 import common as mav

from dronedispatch.mavlink import px4_modes, wire
from dronedispatch.mavlink.frames import FrameSplitter, SignatureGate, signature_ok, split_datagram
from dronedispatch.mavlink.state import SequenceTracker, StateTracker, VehicleState

KEY = bytes(range(32))


def packed(sysid: int = 3, key: bytes | None = None, n: int = 3) -> list[bytes]:
    enc = mav.MAVLink(None, srcSystem=sysid, srcComponent=1)
    if key:
        enc.signing.secret_key = key
        enc.signing.sign_outgoing = True
        enc.signing.timestamp = int((time.time() - 1420070400) * 100_000)
    out = []
    for i in range(n):
        out.append(mav.MAVLink_heartbeat_message(2, 12, 29, 0x03040000, 3, 3).pack(enc))
        enc.seq += 1
        out.append(mav.MAVLink_global_position_int_message(i, 1, 2, 3, 4, 5, 6, 7, 8).pack(enc))
        enc.seq += 1
    return out


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=20))
def test_splitter_reassembles_any_chunking(cuts: list[int]) -> None:
    frames = packed(n=4)
    stream = b"\x00garbage" + b"".join(frames)
    sp = FrameSplitter()
    got = []
    i = 0
    for c in cuts * 20:
        got += sp.feed(stream[i : i + c])
        i += c
        if i >= len(stream):
            break
    got += sp.feed(stream[i:])
    assert [f.raw for f in got] == frames
    assert sp.garbage_bytes == 8
    assert [f.msgid for f in got[:2]] == [0, 33] and got[0].sysid == 3


def test_signature_gate_accepts_good_rejects_unsigned_bad_and_replayed() -> None:
    good = packed(key=KEY, n=2)
    sp = FrameSplitter()
    frames = sp.feed(b"".join(good))
    assert all(f.signed for f in frames) and signature_ok(frames[0].raw, KEY)
    gate = SignatureGate(KEY)
    assert all(gate.check(f) for f in frames)
    assert not gate.check(frames[0])  # replay: timestamp not newer
    unsigned = sp.feed(packed(n=1)[0])[0]
    assert not gate.check(unsigned)
    wrong = sp.feed(packed(key=bytes(32), n=1)[0])[0]
    assert not SignatureGate(KEY).check(wrong)


def test_our_signed_output_verifies_with_pymavlink() -> None:
    enc = wire.new_encoder(255, 190, KEY)
    raw = wire.pack(enc, mav.MAVLink_command_long_message(1, 1, 400, 0, 1, 0, 0, 0, 0, 0, 0))
    rx = mav.MAVLink(None)
    rx.signing.secret_key = KEY
    rx.signing.allow_unsigned_callback = lambda _m, _i: False
    msg = rx.decode(bytearray(raw))
    assert msg.get_type() == "COMMAND_LONG" and msg._signed


def test_command_cancel_packs_and_decodes() -> None:
    enc = wire.new_encoder(255, 190)
    raw = wire.pack(enc, wire.CommandCancel(1, 1, 400))
    frame = FrameSplitter().feed(raw)[0]
    assert frame.msgid == 80
    assert wire.payload_of(raw)[:2] == (400).to_bytes(2, "little")


def test_extension_fields_read_from_raw_payload() -> None:
    # MISSION_ACK with opaque_id, packed by hand as a newer dialect would.
    import struct

    m = mav.MAVLink_mission_ack_message(255, 190, 0, 0)
    enc = mav.MAVLink(None, 1, 1)
    payload = struct.pack("<BBBBI", 255, 190, 0, 0, 0xDEADBEEF)
    raw = m._pack(enc, m.crc_extra, payload)
    frame = FrameSplitter().feed(raw)[0]
    msg = mav.MAVLink(None).decode(bytearray(raw))
    wire.add_extensions(frame, msg)
    assert msg.opaque_id == 0xDEADBEEF


def test_px4_modes_round_trip() -> None:
    for name in ["AUTO.MISSION", "AUTO.LOITER", "AUTO.RTL", "AUTO.LAND", "AUTO.TAKEOFF", "POSCTL", "OFFBOARD"]:
        assert px4_modes.decode_px4(px4_modes.px4_custom_mode(name)) == name
    assert px4_modes.decode_mode(12, 29, 0x04040000) == "AUTO.MISSION"
    assert px4_modes.decode_mode(12, 157, 0x05040000) == "AUTO.RTL"
    assert px4_modes.decode_mode(3, 89, 6) == "RTL"  # ArduPilot copter
    assert px4_modes.decode_px4(0x00990000).startswith("UNKNOWN")


def test_sequence_gaps_count_losses_not_reordering() -> None:
    t = SequenceTracker()
    assert [t.observe(1, s) for s in (250, 251, 253, 0, 0, 255, 4)] == [0, 0, 1, 2, 0, 0, 4]


def test_state_tracker_reports_discrete_changes_and_telemetry() -> None:
    s = VehicleState(sysid=1)
    tr = StateTracker(s)
    changed, moved = tr.apply(mav.MAVLink_heartbeat_message(2, 12, 157, 0x04040000, 4, 3), 1.0)
    assert {"armed", "mode", "system_status"} <= changed and not moved
    assert s.armed and s.mode == "AUTO.MISSION"
    changed, moved = tr.apply(mav.MAVLink_heartbeat_message(2, 12, 157, 0x04040000, 4, 3), 2.0)
    assert changed == set()
    changed, moved = tr.apply(
        mav.MAVLink_global_position_int_message(5, 373918000, 1266393000, 40000, 30000, 300, 400, -100, 9000), 2.1
    )
    assert (
        moved
        and s.lat == 37.3918
        and s.alt_rel == 30.0
        and abs((s.groundspeed or 0) - 5.0) < 1e-9
        and s.climb_rate == 1.0
    )
    cur = mav.MAVLink_mission_current_message(3, 10, 3, 1)
    cur.mission_id = 42
    changed, _ = tr.apply(cur, 3.0)
    assert changed == {"mission_seq", "mission_total", "mission_state", "mission_id"}
    changed, _ = tr.apply(mav.MAVLink_mission_item_reached_message(3), 3.1)
    assert changed == {"last_reached_seq"}
    changed, _ = tr.apply(mav.MAVLink_extended_sys_state_message(0, 2), 3.2)
    assert changed == {"landed_state"}
    changed, moved = tr.apply(mav.MAVLink_sys_status_message(0, 0, 0, 0, 15800, 0, 9, 0, 0, 0, 0, 0, 0), 3.3)
    assert moved and s.battery_pct == 9 and "battery_low" in s.failsafe and "failsafe" in changed
    home = mav.MAVLink_home_position_message(373918000, 1266393000, 10000, 0, 0, 0, [1, 0, 0, 0], 0, 0, 0)
    changed, _ = tr.apply(home, 3.4)
    assert changed == {"home"} and s.home_lat == 37.3918


def test_sequence_shared_between_components_is_not_loss() -> None:
    t = SequenceTracker()
    # autopilot 1 and camera 100 drawing from one counter, one packet (seq 4) lost
    seen = [(1, 0), (1, 1), (100, 2), (1, 3), (1, 5), (100, 6), (1, 7)]
    assert sum(t.observe(c, s) for c, s in seen) == 1


SAMPLES = [
    mav.MAVLink_heartbeat_message(6, 8, 0, 0, 4, 3),
    mav.MAVLink_command_long_message(1, 1, 400, 3, 1, 21196, 0, 0, float("nan"), 0, 0),
    mav.MAVLink_command_int_message(1, 1, 5, 192, 0, 0, -1, 1, 0, 0, 374000000, 1266000000, 120.5),
    mav.MAVLink_mission_item_int_message(1, 1, 7, 6, 16, 0, 1, 0, 0, 0, float("nan"), 373918000, 1266393000, 25.0, 0),
    mav.MAVLink_mission_count_message(1, 1, 0, 2),
    mav.MAVLink_param_set_message(1, 1, b"MPC_XY_CRUISE", 12.5, 9),
    mav.MAVLink_timesync_message(0, 123456789012),
    mav.MAVLink_statustext_message(2, b"Operation timeout"),
]


@given(st.sampled_from(SAMPLES), st.booleans(), st.integers(min_value=0, max_value=255))
def test_fast_pack_matches_pymavlink_byte_for_byte(msg: object, signed: bool, seq: int) -> None:
    ours = wire.new_encoder(255, 190, KEY if signed else None)
    ref = wire.new_encoder(255, 190, KEY if signed else None)
    ours.seq = ref.seq = seq
    ts = wire.signing_timestamp() + 1000
    ours.signing.timestamp = ref.signing.timestamp = ts
    expected = msg.pack(ref)  # type: ignore[attr-defined]
    assert wire.pack(ours, msg) == expected


@given(st.sampled_from([*SAMPLES, mav.MAVLink_battery_status_message(0, 0, 0, 2500, [4200] * 10, 100, 0, 0, 87)]))
def test_fast_decode_matches_pymavlink(msg: object) -> None:
    raw = msg.pack(mav.MAVLink(None, 1, 1))  # type: ignore[attr-defined]
    frame = FrameSplitter().feed(raw)[0]
    ref = mav.MAVLink(None).decode(bytearray(raw))
    got = wire.decode(frame, mav.MAVLink(None))
    assert str(got.to_dict()) == str(ref.to_dict())  # str(): NaN compares equal as text


def test_fast_decode_rejects_bad_crc() -> None:
    raw = bytearray(SAMPLES[1].pack(mav.MAVLink(None, 1, 1)))
    raw[12] ^= 0xFF
    frame = FrameSplitter().feed(bytes(raw))[0]
    with pytest.raises(wire.MAVError):
        wire.decode(frame, mav.MAVLink(None))


def test_split_datagram_reads_whole_frames_and_counts_the_rest() -> None:
    frames = packed(n=2) + packed(key=KEY, n=1)
    for raw in frames:  # one frame per datagram, signed or not: the same as the stream splitter
        assert split_datagram(raw) == ([FrameSplitter().feed(raw)[0]], 0)
    two, garbage = split_datagram(frames[0] + frames[1])
    assert [f.msgid for f in two] == [0, 33] and garbage == 0
    cut, garbage = split_datagram(frames[0] + frames[1][:7])  # a frame cut short is not a frame
    assert [f.msgid for f in cut] == [0] and garbage == 7
    junk, garbage = split_datagram(b"\x01\x02" + frames[0])
    assert [f.msgid for f in junk] == [0] and garbage == 2
    assert split_datagram(b"") == ([], 0)


@given(
    st.lists(st.sampled_from(packed(n=2) + packed(key=KEY, n=1)), max_size=8),
    st.binary(max_size=5).filter(lambda b: 0xFD not in b and 0xFE not in b),
)
def test_split_datagram_agrees_with_the_stream_splitter(frames: list[bytes], junk: bytes) -> None:
    data = junk + b"".join(frames)
    stream = FrameSplitter()
    assert split_datagram(data) == (stream.feed(data), stream.garbage_bytes)


@given(st.booleans(), st.integers(min_value=0, max_value=255))
def test_prepacked_message_frames_like_the_message_it_was_made_from(signed: bool, seq: int) -> None:
    msg = SAMPLES[3]  # MISSION_ITEM_INT with a NaN, a negative-free int32 pair and a float altitude
    ours = wire.new_encoder(255, 190, KEY if signed else None)
    ref = wire.new_encoder(255, 190, KEY if signed else None)
    ours.seq = ref.seq = seq
    ours.signing.timestamp = ref.signing.timestamp = wire.signing_timestamp() + 1000
    pre = wire.Prepacked.of(msg)
    raw = msg.pack(ref)  # type: ignore[attr-defined]
    assert wire.pack(ours, pre) == raw
    assert pre.get_type() == "MISSION_ITEM_INT" and pre.seq == 7 and pre.x == 373918000
    assert str(pre.to_dict()) == str(mav.MAVLink(None).decode(bytearray(raw)).to_dict())  # as read back
    with pytest.raises(AttributeError):
        _ = pre.no_such_field


def test_prepacked_refuses_text_messages_and_copies_cleanly() -> None:
    import copy

    with pytest.raises(ValueError, match="text"):
        wire.Prepacked.of(SAMPLES[-1])
    pre = wire.Prepacked.of(SAMPLES[4])
    twin = copy.copy(pre)
    assert twin.payload == pre.payload and twin.count == 0 and twin.mission_type == 2


def test_statustext_chunks_are_joined() -> None:
    from dronedispatch.mavlink.state import StatusTextAssembler

    a = StatusTextAssembler()
    assert a.feed("Takeoff detected", 0, 0) == "Takeoff detected"
    first = "x" * 50
    assert a.feed(first, 7, 0) is None
    assert a.feed("tail", 7, 1) == first + "tail"
