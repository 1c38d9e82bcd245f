"""Access tokens and a wall clock that steps: a token issued just before the host's clock steps back stays
valid (its issue time is not checked against the clock); its expiry still ends it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dronedispatch.api.security import InvalidToken, issue_token, read_claims

SECRET = "s" * 32


def test_a_token_issued_before_the_clock_stepped_back_is_still_valid() -> None:
    issued = datetime.now(UTC) + timedelta(minutes=10)  # the clock was 10 min ahead when it was issued
    claims = read_claims(SECRET, issue_token(SECRET, "op", "operator", 15, now=issued))
    assert claims.username == "op" and claims.expires_at > datetime.now(UTC)


def test_a_token_past_its_expiry_is_refused() -> None:
    issued = datetime.now(UTC) - timedelta(minutes=20)
    with pytest.raises(InvalidToken, match="expired"):
        read_claims(SECRET, issue_token(SECRET, "op", "operator", 15, now=issued))
