"""The demo keeps its token-signing key under ./var, so restarting it keeps browser logins valid."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dronedispatch.demo import demo_secret_key, demo_settings


def test_the_key_file_is_made_once_private_and_read_back(tmp_path: Path) -> None:
    first = demo_secret_key(tmp_path)
    path = tmp_path / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="utf-8").strip() == first and len(first) >= 32
    mtime = path.stat().st_mtime_ns
    assert demo_secret_key(tmp_path) == first  # the second start
    assert path.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret_key"]  # no temporary file left behind


def test_two_demos_starting_together_share_one_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: demo_secret_key(tmp_path), range(32)))
    assert keys == {(tmp_path / "secret_key").read_text(encoding="utf-8").strip()}


def test_an_unusable_key_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("\n", encoding="utf-8")
    key = demo_secret_key(tmp_path)
    assert len(key) >= 32 and demo_secret_key(tmp_path) == key
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600


def test_demo_settings_use_the_kept_key_unless_dd_secret_key_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # a shared database without DD_SECRET_KEY: the demo's kept key satisfies the rule
    monkeypatch.setenv("DD_DATABASE_URL", "postgresql+psycopg://dd@127.0.0.1:1/dd")
    monkeypatch.delenv("DD_SECRET_KEY", raising=False)
    kept = demo_settings(1, sitl=False)
    assert kept.secret_key == (tmp_path / "var" / "secret_key").read_text(encoding="utf-8").strip()
    assert not kept.secret_key_generated
    assert demo_settings(1, sitl=False).secret_key == kept.secret_key  # a restart
    explicit = "e" * 40
    monkeypatch.setenv("DD_SECRET_KEY", explicit)
    assert demo_settings(1, sitl=False).secret_key == explicit
