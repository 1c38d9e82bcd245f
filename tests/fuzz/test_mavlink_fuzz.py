"""The link's MAVLink parser and the simulator's under hostile bytes: nothing raises out of them,
nothing stalls, and valid frames among garbage are still decoded (resynchronisation)."""

from __future__ import annotations

import logging
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymavlink.dialects.v20 import common as mav

from dronedispatch.mavlink import wire
from dronedispatch.mavlink.frames import Frame, FrameSplitter, SignatureGate, split_datagram
from dronedispatch.sim.vehicle import SimVehicle

from .budget import FUZZ, no_stall

KEY = bytes(range(32))
DECODE_ERRORS = (wire.MAVError, ValueError, IndexError)  # what the link counts as malformed


def _messages() -> list[mav.MAVLink_message]:
    f = mav.MAVLink(None)
    return [
        f.heartbeat_encode(2, 12, 81, 0, 4, 3),
        f.global_position_int_encode(1000, 373900000, 1266300000, 50000, 20000, 1, -2, 0, 9000),
        f.statustext_encode(4, b"Preflight Fail: battery", 0, 0),
        f.mission_ack_encode(255, 190, 0, 0),
        f.command_ack_encode(400, 0, 0, 0, 255, 190),
        f.mission_current_encode(3, 7, 2, 0),
        f.attitude_encode(1, 0.1, 0.2, 0.3, 0.0, 0.0, 0.0),  # streamed, not decoded by the link
        wire.CommandCancel(1, 1, 400),
    ]


def _packed() -> list[bytes]:
    out: list[bytes] = []
    for signed in (False, True):
        enc = wire.new_encoder(1, 1, KEY if signed else None)
        out += [bytes(wire.pack(enc, m)) for m in _messages()]
    v1 = mav.MAVLink(None, srcSystem=1, srcComponent=1)
    out += [bytes(m.pack(v1, force_mavlink1=True)) for m in _messages()[:6]]
    return out


FRAMES = _packed()
frames_st = st.sampled_from(FRAMES)
#: Garbage as a link sees it: anything, but starting with a byte that cannot start a frame
#: (a blob that starts with a start byte right after a frame is, by the wire, a frame).
garbage_st = st.builds(
    lambda first, rest: bytes([first]) + rest,
    st.integers(0, 255).filter(lambda b: b not in (0xFD, 0xFE)),
    st.binary(max_size=300),
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid frame broken one way: truncated, a byte flipped, a huge or wrong length, the signed
    flag set or cleared, a garbage signature, or a v2 header on a v1 frame."""
    raw = bytearray(draw(frames_st))
    how = draw(st.sampled_from(["truncate", "flip", "length", "signed", "signature", "stx"]))
    if how == "truncate":
        return bytes(raw[: draw(st.integers(0, len(raw) - 1))])
    if how == "flip":
        i = draw(st.integers(0, len(raw) - 1))
        raw[i] ^= draw(st.integers(1, 255))
    elif how == "length":
        raw[1] = draw(st.sampled_from([0, 1, 255, max(raw[1] - 1, 0), min(raw[1] + 1, 255)]))
    elif how == "signed" and raw[0] == 0xFD:
        raw[2] ^= 0x01
    elif how == "signature" and raw[0] == 0xFD and raw[2] & 0x01:
        raw[-13:] = draw(st.binary(min_size=13, max_size=13))
    elif how == "stx":
        raw[0] = 0xFD if raw[0] == 0xFE else 0xFE
    return bytes(raw)


def _consume(frames: list[Frame]) -> list[object]:
    """What the link does with each frame: the signature gate, then a decode of those it reads."""
    gate = SignatureGate(KEY)
    decoder = mav.MAVLink(None)
    decoded: list[object] = []
    for frame in frames:
        assert frame.raw[0] in (0xFD, 0xFE)
        gate.check(frame)
        try:
            msg = wire.decode(frame, decoder)
        except DECODE_ERRORS:
            continue
        wire.add_extensions(frame, msg)
        decoded.append(msg)
    return decoded


def _split_both(data: bytes, cuts: list[int]) -> tuple[list[Frame], list[Frame]]:
    """The frames of ``data`` as one datagram and as a stream arriving in pieces at ``cuts``."""
    datagram, _ = split_datagram(data, wire.crc_matches)
    splitter = FrameSplitter(wire.crc_matches)
    stream: list[Frame] = []
    last = 0
    for c in [*sorted({min(c, len(data)) for c in cuts}), len(data)]:
        stream += splitter.feed(data[last:c])
        last = c
    # A stream may hold back frames behind a false start until enough bytes came to check it:
    # the traffic that follows (a vehicle streams all the time) lets them out, none is lost.
    tail = splitter.feed(b"".join(FRAMES) * 2)
    stream += tail[: max(len(tail) - 2 * len(FRAMES), 0)]
    return datagram, stream


@FUZZ
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=8))
def test_arbitrary_bytes_never_raise_out_of_the_parser(data: bytes, cuts: list[int]) -> None:
    with no_stall():
        datagram, stream = _split_both(data, cuts)
        _consume(datagram)
        _consume(stream)
        # without the checksum check too (as test relays and tools use it)
        split_datagram(data)
        FrameSplitter().feed(data)


@FUZZ
@given(st.lists(st.one_of(frames_st, mutated(), garbage_st), max_size=30), st.lists(st.integers(0, 9000), max_size=8))
def test_broken_frames_in_a_stream_never_raise(parts: list[bytes], cuts: list[int]) -> None:
    with no_stall():
        for frames in _split_both(b"".join(parts), cuts):
            _consume(frames)


def _checks_out(m: bytes) -> bool:
    """A broken frame whose checksum still holds (the signature is outside it): by the wire, a frame."""
    if len(m) < 8 or m[0] not in (0xFD, 0xFE):
        return False
    end = (12 if m[0] == 0xFD else 8) + m[1]
    msgid = int.from_bytes(m[7:10], "little") if m[0] == 0xFD else m[5]
    return len(m) >= end and bool(wire.crc_matches(m[:end], msgid))


broken_st = mutated().filter(lambda m: not _checks_out(m)).map(lambda m: b"\x00" + m)


@FUZZ
@given(
    st.lists(st.tuples(frames_st, st.one_of(st.just(b""), garbage_st, broken_st)),
             min_size=1, max_size=20),
    st.lists(st.integers(0, 9000), max_size=8),
)  # fmt: skip
def test_valid_frames_among_garbage_are_all_decoded(parts: list[tuple[bytes, bytes]], cuts: list[int]) -> None:
    """Every intact frame is found again after garbage or a broken frame before it."""
    data = b"".join(frame + junk for frame, junk in parts)
    want = [frame for frame, _ in parts]
    with no_stall():
        for frames in _split_both(data, cuts):
            got = iter(f.raw for f in frames)
            # in order, perhaps with more in between (a "broken" frame may be left whole, or still check out)
            assert all(w in got for w in want), [f.raw.hex() for f in frames]


def test_a_garbage_start_byte_does_not_swallow_the_next_frames() -> None:
    """A start byte with a huge length inside garbage: the frames after it come out, and at once."""
    good = FRAMES[0]
    splitter = FrameSplitter(wire.crc_matches)
    assert [f.raw for f in splitter.feed(b"\x00\xfd\xff" + good + good)] == [good, good]
    frames, garbage = split_datagram(b"\x00\xfe\xff" + good, wire.crc_matches)
    assert [f.raw for f in frames] == [good] and garbage == 3


def test_a_vendor_message_in_step_still_passes() -> None:
    """A message this dialect does not know has no checksum to test: taken when the stream is in step."""
    unknown = bytearray(wire.pack(wire.new_encoder(1, 1), _messages()[0]))
    unknown[7:10] = (42000).to_bytes(3, "little")
    frames, garbage = split_datagram(FRAMES[0] + bytes(unknown), wire.crc_matches)
    assert [f.msgid for f in frames] == [0, 42000] and garbage == 0


# -- the simulator's parser (pymavlink, robust parsing) -------------------------------------------------


@pytest.fixture(scope="module")
def vehicle() -> SimVehicle:
    v = SimVehicle(0, 1, (37.39, 126.63, 5.0), gcs_peer=("127.0.0.1", 9), api_peer=None, video_uri="udp://x:1")
    v.tick(5.0, 0.0)
    return v


def _gcs_frames() -> list[bytes]:
    f = mav.MAVLink(None, srcSystem=255, srcComponent=190)
    msgs = [
        f.heartbeat_encode(6, 8, 0, 0, 0, 3),
        f.command_long_encode(1, 1, 512, 0, 242, 0, 0, 0, 0, 0, 0),
        f.param_request_read_encode(1, 1, b"NAV_ACC_RAD", -1),
        f.mission_request_list_encode(1, 1, 0),
    ]
    return [bytes(m.pack(f)) for m in msgs]


GCS = _gcs_frames()


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=400), st.sampled_from(GCS), mutated()), min_size=1, max_size=12))
def test_simulator_survives_any_datagrams_and_still_answers(vehicle: SimVehicle, datagrams: list[bytes]) -> None:
    link = vehicle.links[0]
    with no_stall():
        for k, d in enumerate(datagrams):
            vehicle.on_datagram(link, d, ("127.0.0.1", 9), float(k))
        before = link.received
        # whatever came before, a whole datagram afterwards is read: a datagram never continues another
        vehicle.on_datagram(link, GCS[0], ("127.0.0.1", 9), 99.0)
        assert link.received == before + 1
        vehicle.tick(0.5, 100.0)
    m = vehicle.model
    assert all(math.isfinite(x) for x in (m.lat, m.lon, m.alt_rel, m.battery))


def test_simulator_logs_no_error_for_garbage(vehicle: SimVehicle, caplog: pytest.LogCaptureFixture) -> None:
    link = vehicle.links[0]
    with caplog.at_level(logging.DEBUG):
        vehicle.on_datagram(link, b"\xfd\xff" + bytes(300), ("127.0.0.1", 9), 0.0)
        vehicle.on_datagram(link, b"\xfe\x05\x00", ("127.0.0.1", 9), 0.0)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
