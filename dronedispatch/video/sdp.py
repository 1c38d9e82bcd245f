"""SDP checks for browser offers (pure logic, no I/O).

The relay only talks ICE with addresses it is configured for (``Settings.ice_hosts``, loopback by
default). A browser offers host candidates on all its interfaces, or ``<uuid>.local`` mDNS names;
aioice would resolve the latter with multicast DNS queries on the LAN. Dropping every remote
candidate outside the allowed set before ``setRemoteDescription`` keeps all traffic on the
configured addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


class OfferError(ValueError):
    """The SDP offer cannot be answered (the reason is safe to show to the client)."""


def candidate_address(line: str) -> str | None:
    """The connection address of an ``a=candidate:`` line (field 5), or None if malformed."""
    fields = line.split()
    return fields[4] if len(fields) >= 8 else None


def filter_candidates(sdp: str, allowed_hosts: Iterable[str]) -> tuple[str, int]:
    """Remove remote candidates whose address is not in ``allowed_hosts``; return (sdp, removed)."""
    allowed = {_normal(h) for h in allowed_hosts}
    out, removed = [], 0
    newline = "\r\n" if "\r\n" in sdp else "\n"
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            addr = candidate_address(line)
            if addr is None or _normal(addr) not in allowed:
                removed += 1
                continue
        out.append(line)
    return newline.join(out) + newline, removed


def check_video_offer(sdp: str) -> None:
    """Raise OfferError unless the offer receives video and can take H.264 packetization-mode 1."""
    if not sdp.startswith("v=0"):
        raise OfferError("not an SDP description")
    if "m=video" not in sdp:
        raise OfferError("the offer has no video section")
    rtpmaps = {
        line.split()[0].split(":")[1]: line.split()[1].upper()
        for line in sdp.splitlines()
        if line.startswith("a=rtpmap:") and len(line.split()) >= 2
    }
    h264 = {pt for pt, enc in rtpmaps.items() if enc.startswith("H264/")}
    if not h264:
        raise OfferError("the offer does not accept H.264 video")
    for line in sdp.splitlines():
        if line.startswith("a=fmtp:"):
            pt, _, params = line[len("a=fmtp:") :].partition(" ")
            if pt in h264 and "packetization-mode=1" in params.replace(" ", ""):
                return
    raise OfferError("the offer does not accept H.264 with packetization-mode=1")


def _normal(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return host.lower()
