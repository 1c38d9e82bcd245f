"""The merge window counts from an incident's first report as well as from its latest."""

from datetime import timedelta

from dronedispatch.domain.incidents import (
    Category,
    MergePolicy,
    OpenIncident,
    match_report,
    within_merge_window,
)
from tests.domain.test_incidents import PARK, T0, incident, report


def kept_alive(minutes_total: int, every: int = 20) -> OpenIncident:
    """An incident that received a report every ``every`` minutes for ``minutes_total`` minutes."""
    inc = incident()
    for m in range(every, minutes_total + 1, every):
        inc = inc.merged(report(minutes=m))
    return inc


def test_an_incident_kept_alive_stops_absorbing_after_its_age_limit() -> None:
    inc = kept_alive(100)  # last report at +100 min, first at 0
    assert match_report(report(minutes=115), [inc]).incident_id == 1  # 115 min after the first: merges
    late = kept_alive(120)  # last report at +120 min: the latest-report window alone would still merge
    decision = match_report(report(minutes=125), [late])
    assert decision.is_new and "at most 2 h" in decision.reason
    # exactly at the limit still merges
    assert within_merge_window(T0 + timedelta(hours=2), late, MergePolicy())


def test_the_age_limit_is_per_category() -> None:
    policy = MergePolicy(max_age={Category.FIRE: timedelta(minutes=40)})
    inc = kept_alive(40)
    assert match_report(report(minutes=45), [inc], policy).is_new  # fire: 40 min at most
    flood = incident(category=Category.FLOOD)
    for m in (20, 40):
        flood = flood.merged(report(minutes=m, category=Category.FLOOD))
    # a category the policy does not name keeps the default (2 h)
    assert match_report(report(minutes=45, category=Category.FLOOD), [flood], policy).incident_id == 1


def test_the_latest_report_window_still_applies() -> None:
    inc = incident()
    assert not within_merge_window(T0 + timedelta(minutes=31), inc, MergePolicy())
    assert within_merge_window(T0 + timedelta(minutes=30), inc, MergePolicy())
    assert within_merge_window(T0 - timedelta(minutes=10), inc, MergePolicy())  # a report observed a little earlier
    assert match_report(report(PARK, minutes=31), [inc]).is_new
