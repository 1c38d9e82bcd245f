"""Run budgets for the fuzz tests: short in the normal suite, long under ``make fuzz``.

``DD_FUZZ=1`` selects the long budget (``DD_FUZZ_EXAMPLES`` examples per test, default 20,000;
``make fuzz`` lifts the suite's per-test timeout for it); without it each test runs a few dozen
examples, seconds in all. Hypothesis keeps the failures it finds in its example database and
tries them first on the next run, so a long run's findings come back in the short one until
they are fixed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

from hypothesis import HealthCheck, settings

LONG = os.environ.get("DD_FUZZ", "") not in ("", "0")
EXAMPLES = int(os.environ.get("DD_FUZZ_EXAMPLES", "20000")) if LONG else 40
#: One input may take this long before it counts as a stall (generous: the machine may be loaded).
STALL_S = 20.0

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # timing is not a property here; a stall is caught by no_stall()
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


class Stalled(AssertionError):
    pass


@contextlib.contextmanager
def no_stall(seconds: float = STALL_S) -> Iterator[None]:
    """Fail (instead of hanging) when the body runs longer than ``seconds`` (main thread only).

    pytest-timeout arms the same timer for the whole test: it is put back afterwards, less the
    time spent here (and fires at once if it ran out meanwhile)."""

    def _alarm(signum: int, frame: object) -> None:
        raise Stalled(f"one input took longer than {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, _alarm)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    if outer and outer < seconds:
        signal.setitimer(signal.ITIMER_REAL, outer)  # the test's own limit comes first
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 0.001))
