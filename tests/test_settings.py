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


POSTGRES = "postgresql+psycopg://dd@127.0.0.1:1/dd"
SECRET = "s" * 40


def test_a_shared_database_needs_a_secret_key() -> None:
    # tokens are verified by every node and after restarts: a key made up per process cannot do that
    with pytest.raises(ValidationError, match="DD_SECRET_KEY is required when DD_DATABASE_URL is not SQLite"):
        Settings(database_url=POSTGRES)
    with pytest.raises(ValidationError, match="DD_SECRET_KEY is required"):
        Settings(database_url=POSTGRES, secret_key="")


def test_a_shared_database_with_a_secret_key_is_fine() -> None:
    s = Settings(database_url=POSTGRES, secret_key=SECRET)
    assert s.secret_key == SECRET and not s.secret_key_generated


def test_the_secret_key_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DD_DATABASE_URL", POSTGRES)
    with pytest.raises(ValidationError, match="DD_SECRET_KEY is required"):
        Settings()
    monkeypatch.setenv("DD_SECRET_KEY", SECRET)
    assert Settings().secret_key == SECRET


@pytest.mark.parametrize("database_url", [POSTGRES, "sqlite:///./var/dronedispatch.db"])
def test_a_weak_secret_key_is_refused_and_not_echoed(database_url: str) -> None:
    weak = "changeme-changeme-changeme-1234"  # 31 characters
    with pytest.raises(ValidationError, match="31 characters is too weak to sign tokens; use at least 32") as exc:
        Settings(database_url=database_url, secret_key=weak)
    assert weak not in str(exc.value)
    assert Settings(database_url=database_url, secret_key=weak + "5").secret_key == weak + "5"


def test_sqlite_without_a_key_gets_a_random_one_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DD_SECRET_KEY", raising=False)
    a, b = Settings(database_url="sqlite:///./var/a.db"), Settings(database_url="sqlite:///./var/a.db")
    assert a.secret_key_generated and b.secret_key_generated
    assert len(a.secret_key) >= 32 and a.secret_key != b.secret_key
    # a copy with other values keeps its key (the demo and tests copy settings)
    copy = a.model_copy(update={"token_ttl_minutes": 5})
    assert copy.secret_key == a.secret_key and copy.secret_key_generated
