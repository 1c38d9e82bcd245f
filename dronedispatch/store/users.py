"""Accounts: password hashing (argon2) and the `dronedispatch users add` command."""

from __future__ import annotations

import getpass
import sys

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dronedispatch.domain.passwords import password_problem
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


def add_user_cli(name: str, role: str) -> int:
    """Read the password once from standard input and store the user (replacing its password)."""
    if role not in ROLES:
        print(f"dronedispatch: unknown role {role!r}; one of {', '.join(ROLES)}", file=sys.stderr)
        return 2
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {name}: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    problem = password_problem(name, password)
    if problem is not None:
        print(f"dronedispatch: {problem}", file=sys.stderr)
        return 2
    engine = make_engine(Settings().database_url)
    migrate(engine)
    Store(engine).upsert_user(name, hash_password(password), role)
    print(f"user {name} ({role}) saved")
    return 0
