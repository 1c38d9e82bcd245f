"""RFC 6184 packetization and depacketization: round trips, loss, reordering and bad input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dronedispatch.video.h264 import (
    FU_A,
    STAP_A,
    AccessUnit,
    Depacketizer,
    Packetizer,
    is_keyframe,
    join_annexb,
    split_annexb,
)

SPS = bytes([0x67, 0x42, 0xC0, 0x1F, 0xDA])
PPS = bytes([0x68, 0xCE, 0x0F, 0xC8])
IDR = bytes([0x65]) + bytes(range(256)) * 20  # 5 kB: fragmented
P1 = bytes([0x41]) + b"\x11" * 300
P2 = bytes([0x41]) + b"\x22" * 3000


def feed_all(
    d: Depacketizer,
    units: list[tuple[bytes, int]],
    seq0: int = 100,
    drop: frozenset[int] = frozenset(),
    budget: int = 1200,
) -> list[AccessUnit]:
    pk = Packetizer(payload_max=budget)
    out, seq = [], seq0
    for au, ts in units:
        payloads = pk.payloads(au)
        for k, p in enumerate(payloads):
            if seq not in drop:
                out += d.feed(p, sequence=seq & 0xFFFF, timestamp=ts, marker=k == len(payloads) - 1)
            seq += 1
    return out


def test_split_handles_three_and_four_byte_start_codes() -> None:
    buf = b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x01" + PPS + b"\x00\x00\x00\x01" + P1
    assert list(split_annexb(buf)) == [SPS, PPS, P1]


def test_round_trip_keeps_every_access_unit() -> None:
    units = [(join_annexb([SPS, PPS, IDR]), 0), (join_annexb([P1]), 3000), (join_annexb([P2]), 6000)]
    out = feed_all(Depacketizer(), units, seq0=65530)  # crosses the sequence wrap
    assert [u.data for u in out] == [u for u, _ in units]
    assert [u.keyframe for u in out] == [True, False, False]
    assert [u.rtp_timestamp for u in out] == [0, 3000, 6000]


def test_large_nal_units_become_fu_a_within_budget() -> None:
    payloads = Packetizer(payload_max=1200).payloads(join_annexb([IDR]))
    assert len(payloads) > 1 and all(len(p) <= 1200 for p in payloads)
    assert all(p[0] & 0x1F == FU_A for p in payloads)


@given(st.lists(st.binary(min_size=1, max_size=4000), min_size=1, max_size=6), st.integers(20, 1400))
def test_any_nal_sequence_round_trips(bodies: list[bytes], budget: int) -> None:
    # Real NAL units never contain a start code (emulation prevention) nor end in a zero byte.
    nals = [bytes([0x65]) + b.replace(b"\x00", b"\x01") for b in bodies]
    au = join_annexb([SPS, PPS, *nals])
    out = feed_all(Depacketizer(), [(au, 90)], budget=budget)
    assert [u.data for u in out] == [au]


def test_a_lost_packet_drops_until_the_next_idr() -> None:
    d = Depacketizer()
    units = [
        (join_annexb([SPS, PPS, IDR]), 0),
        (join_annexb([P2]), 3000),  # three packets: the second is lost
        (join_annexb([P1]), 6000),  # references the lost picture: also dropped
        (join_annexb([IDR]), 9000),  # SPS/PPS are put back in front
    ]
    first_p2 = 100 + len(Packetizer().payloads(units[0][0]))
    out = feed_all(d, units, seq0=100, drop=frozenset({first_p2 + 1}))
    assert [u.rtp_timestamp for u in out] == [0, 9000]
    assert out[1].data == join_annexb([SPS, PPS, IDR])
    assert d.lost == 2


def test_stream_joined_mid_gop_starts_at_an_idr() -> None:
    out = feed_all(Depacketizer(), [(join_annexb([P1]), 0), (join_annexb([SPS, PPS, IDR]), 3000)])
    assert [u.rtp_timestamp for u in out] == [3000]


def test_late_and_duplicate_packets_are_ignored() -> None:
    d = Depacketizer()
    au = join_annexb([SPS, PPS, P1])
    idr = join_annexb([SPS, PPS, IDR])
    out = feed_all(d, [(idr, 0)], seq0=10)
    n = len(Packetizer().payloads(idr))
    out += d.feed(Packetizer().payloads(idr)[0], sequence=10, timestamp=0, marker=False)  # a duplicate
    out += d.feed(P1, sequence=10 + n, timestamp=3000, marker=True)
    assert len(out) == 2 and out[1].data == join_annexb([P1])
    assert not is_keyframe(au[:0])


def test_stap_a_is_unpacked() -> None:
    stap = bytes([STAP_A]) + b"".join(len(n).to_bytes(2, "big") + n for n in (SPS, PPS))
    d = Depacketizer()
    out = d.feed(stap, sequence=1, timestamp=0, marker=False)
    out += d.feed(IDR[:1000], sequence=2, timestamp=0, marker=True)
    assert out and out[0].data == join_annexb([SPS, PPS, IDR[:1000]])


@given(st.lists(st.binary(min_size=0, max_size=50), max_size=30))
def test_garbage_never_raises(payloads: list[bytes]) -> None:
    d = Depacketizer()
    for k, p in enumerate(payloads):
        if p:
            d.feed(p, sequence=k, timestamp=k // 3, marker=k % 3 == 2)
