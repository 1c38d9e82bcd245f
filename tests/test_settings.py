"""Settings: DD_* values are checked when read, each refusal naming what is wrong."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dronedispatch.settings import Settings

KEY = "ab" * 32


def test_connection_strings_and_signing_keys_as_the_link_takes_them() -> None:
    s = Settings(mavlink=" udpin:127.0.0.1:14550, tcp:127.0.0.1:5760 ,", signing_keys={3: KEY.upper()})
    assert s.mavlink_urls == ["udpin:127.0.0.1:14550", "tcp:127.0.0.1:5760"]
    assert s.signing_key_bytes == {3: bytes([0xAB] * 32)}


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"mavlink": "udpin:127.0.0.1"}, "bad MAVLink connection string"),
        ({"mavlink": "http://127.0.0.1:80"}, "bad MAVLink connection string"),
        ({"mavlink": "udpin:127.0.0.1:70000"}, "port out of range"),
        ({"mavlink": " , "}, "at least one MAVLink connection string"),
        ({"signing_keys": {1: "zz" * 32}}, "not hexadecimal"),
        ({"signing_keys": {1: "ab" * 16}}, "has 32 hex characters; a MAVLink signing key has 64"),
        ({"signing_keys": {0: KEY}}, "system id 0 is outside 1..255"),
        ({"signing_keys": {256: KEY}}, "system id 256 is outside 1..255"),
    ],
)
def test_bad_values_are_refused_with_a_reason(values: dict[str, object], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        Settings(**values)  # type: ignore[arg-type]
