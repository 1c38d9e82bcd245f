"""Whether a store error means "the database is not there right now" rather than "this request is wrong".

A stopped, restarting or unreachable PostgreSQL server (or a SQLite file locked past its timeout) is a
passing condition: requests are refused with 503 and a reason, and writes the service must not lose are
retried until the database returns. Anything else (a constraint, a bad statement) is not retried.
"""

from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy import exc as sa_exc

#: SQLite's errors that pass: another writer holds the file, or the file system hiccuped.
_SQLITE_PASSING = ("database is locked", "disk i/o error", "unable to open database file")


def database_unavailable(error: BaseException) -> bool:
    """True when ``error`` says the database cannot be reached or is shutting down, not that the
    statement was refused; retrying the same work later may then succeed."""
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig if error.orig is not None else error
    # psycopg: a refused or dropped connection, a server shutting down (admin_shutdown, 57P01..57P03)
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    if isinstance(error, sqlite3.OperationalError):
        return any(text in str(error).lower() for text in _SQLITE_PASSING)
    return False
