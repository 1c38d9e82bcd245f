"""The recorded CAP alert, with its times moved to the present for paths that read the clock.

The service judges a CAP alert against the time it arrives (an expired alert is ignored), so a
recording sent on a fixed day would stop being accepted once that day passes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

CAP_FLOOD = Path(__file__).parent / "data" / "cap_flood_ko_en.xml"
_SENT = re.compile(r"<sent>([^<]+)</sent>")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")


def cap_flood_sent_at(sent: datetime | None = None) -> bytes:
    """The alert as if sent at ``sent`` (default: a minute ago); every time in it keeps its offset
    from the sending time and its own UTC offset."""
    text = CAP_FLOOD.read_text(encoding="utf-8")
    match = _SENT.search(text)
    assert match, "the recorded alert has a <sent> time"
    shift = (sent or datetime.now(UTC) - timedelta(minutes=1)) - datetime.fromisoformat(match.group(1))

    def moved(m: re.Match[str]) -> str:
        t = datetime.fromisoformat(m.group(0))
        return (t + shift).astimezone(t.tzinfo).isoformat(timespec="seconds")

    return _TIME.sub(moved, text).encode("utf-8")
