"""Which accounts may be held to one district: a pure rule shared by the admin API and `users add`."""

from __future__ import annotations

from collections.abc import Collection

#: Roles that may be held to one district; testers and admins always work for the whole city.
SCOPED_ROLES = ("operator", "pilot")


def district_problem(district: str | None, role: str, known: Collection[str]) -> str | None:
    """Why an account of ``role`` may not be given ``district`` (None: the whole city, always fine)."""
    if district is None:
        return None
    if district not in known:
        return f"unknown district {district!r}; one of {', '.join(sorted(known))}"
    if role not in SCOPED_ROLES:
        return f"a {role} works for the whole city: only {' or '.join(SCOPED_ROLES)} accounts take a district"
    return None
