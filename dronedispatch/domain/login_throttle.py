"""Failed-login throttling rules (pure: no I/O).

A key (an account name or a client address) collects failures inside a window; the failure that
reaches the limit locks the key, each lockout twice as long as the one before (up to a ceiling),
so a patient guesser gains little from waiting out the lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class ThrottleRule:
    failures: int  # this many failures within ``window`` lock the key
    window: timedelta
    lockout: timedelta  # the first lockout; each later one doubles
    max_lockout: timedelta


ACCOUNT_RULE = ThrottleRule(5, timedelta(minutes=10), timedelta(minutes=15), timedelta(hours=24))
#: A whole operations centre may sit behind one address: a higher limit, the same lock lengths.
ADDRESS_RULE = ThrottleRule(20, timedelta(minutes=10), timedelta(minutes=15), timedelta(hours=24))


@dataclass(frozen=True)
class ThrottleState:
    failures: int
    window_start: datetime
    locked_until: datetime | None
    lockouts: int

    def locked_at(self, at: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > at


def after_failure(state: ThrottleState | None, at: datetime, rule: ThrottleRule) -> ThrottleState:
    """The key's state once the failure at ``at`` is counted."""
    if state is None or at - state.window_start > rule.window:
        failures, start = 1, at
    else:
        failures, start = state.failures + 1, state.window_start
    lockouts = state.lockouts if state is not None else 0
    locked_until = state.locked_until if state is not None else None
    if failures >= rule.failures:
        length = min(rule.lockout * 2**lockouts, rule.max_lockout)
        return ThrottleState(0, at, at + length, lockouts + 1)
    return ThrottleState(failures, start, locked_until, lockouts)
