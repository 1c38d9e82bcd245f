"""Password policy for new accounts and new passwords (pure: no I/O)."""

from __future__ import annotations

MIN_LENGTH = 12

#: Passwords that top every leaked-password list (and their obvious padding to 12 characters).
#: A short list on purpose: it stops the guesses an attacker tries first, not every weak password.
COMMON = frozenset(
    {
        "123456789012", "1234567890ab", "123456123456", "password1234", "password123!", "passw0rd1234",
        "password12345", "qwertyuiop12", "qwertyuiop123", "qwerty123456", "1q2w3e4r5t6y", "1qaz2wsx3edc",
        "abc123456789", "abcdefghijkl", "iloveyou1234", "letmein12345", "welcome12345", "welcome123!@",
        "admin1234567", "administrator", "changeme1234", "trustno11234", "football1234", "baseball1234",
        "superman1234", "dragon123456", "monkey123456", "sunshine1234", "princess1234", "starwars1234",
        "aaaaaaaaaaaa", "000000000000", "111111111111", "123123123123", "qweasdzxc123", "zaq12wsxcde3",
        "asdfghjkl123", "passwordpassword", "dronedispatch", "dronedispatch1", "operator1234", "pilot1234567",
    }
)  # fmt: skip


def password_problem(username: str, password: str) -> str | None:
    """Why ``password`` may not be used by ``username``, or None when it may."""
    if len(password) < MIN_LENGTH:
        return f"the password must have at least {MIN_LENGTH} characters"
    folded = password.casefold()
    if username and username.casefold() in (folded, folded[::-1]):
        return "the password may not be the user name"
    if folded in COMMON or len(set(folded)) <= 2:
        return "the password is too common: choose one that is not on lists of leaked passwords"
    return None
