"""Accounts: password hashing (argon2) and the `dronedispatch users add` command."""

from __future__ import annotations

import getpass
import sys

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dronedispatch import cityfiles
from dronedispatch.domain.districts import DistrictIndex
from dronedispatch.domain.passwords import password_problem
from dronedispatch.domain.scopes import district_problem
from dronedispatch.settings import Settings
from dronedispatch.store.db import make_engine, migrate
from dronedispatch.store.repo import Store

ROLES = ("operator", "pilot", "tester", "admin")
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def add_user_cli(name: str, role: str, district: str | None = None) -> int:
    """Read the password once from standard input and store the user (replacing its password), held
    to ``district`` when one is given (an operator or pilot of that district only)."""
    if role not in ROLES:
        print(f"dronedispatch: unknown role {role!r}; one of {', '.join(ROLES)}", file=sys.stderr)
        return 2
    settings = Settings()
    known = DistrictIndex(cityfiles.read_structured(settings.districts)).ids
    if (problem := district_problem(district, role, known)) is not None:
        print(f"dronedispatch: {problem}", file=sys.stderr)
        return 2
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {name}: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    problem = password_problem(name, password)
    if problem is not None:
        print(f"dronedispatch: {problem}", file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url)
    migrate(engine)
    Store(engine).upsert_user(name, hash_password(password), role, district=district)
    print(f"user {name} ({role}{', ' + district if district else ''}) saved")
    return 0
