"""Pure rules of staff identity: roles, usernames, passwords, display names. No I/O.

Every refusal is an `IdentityPolicyError` (422) carrying one sentence a person can act on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from core.identity.errors import IdentityPolicyError


class Role(StrEnum):
    """What a staff member may do. Roles never imply each other: an admin manages accounts
    but is not a pharmacist, so an admin account cannot verify product or approve dispatch
    (separation of duties; USP <797> makes product verification a pharmacist's act)."""

    technician = "technician"
    packer = "packer"
    pharmacist = "pharmacist"
    admin = "admin"


ROLE_ORDER: tuple[Role, ...] = tuple(Role)

USERNAME_MIN = 3
USERNAME_MAX = 150
PASSWORD_MIN = 12
# argon2 would take longer input, but nobody types more; the cap keeps request bodies small.
PASSWORD_MAX = 1024
DISPLAY_NAME_MAX = 200
TOKEN_NAME_MAX = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_USERNAME_CHARS = re.compile(r"[a-z0-9._-]+")
# Control characters other than tab and line breaks. PostgreSQL refuses NUL in text outright;
# the others have no business in a name or a reason and garble logs, terminals and labels.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def normalise_username(raw: str) -> str:
    """Lower case, surrounding spaces removed; 3 to 150 of a-z, 0-9, `.`, `_`, `-`."""
    name = raw.strip().lower()
    if not USERNAME_MIN <= len(name) <= USERNAME_MAX:
        raise IdentityPolicyError(
            f"A username must be {USERNAME_MIN} to {USERNAME_MAX} characters long."
        )
    # fullmatch on ASCII only: "ǅ".lower() and friends must not sneak past as look-alikes.
    if not name.isascii() or not _USERNAME_CHARS.fullmatch(name):
        raise IdentityPolicyError(
            "A username may contain only the letters a-z, digits, dots, hyphens and underscores."
        )
    return name


def username_or_none(raw: str) -> str | None:
    """The normalised username, or None when `raw` could never be one (for login)."""
    try:
        return normalise_username(raw)
    except IdentityPolicyError:
        return None


def check_password(password: str, *, username: str) -> None:
    """At least 12 characters, at most 1024, and not the username (NIST SP 800-63B: length
    over composition rules)."""
    if len(password) < PASSWORD_MIN:
        raise IdentityPolicyError(f"A password must be at least {PASSWORD_MIN} characters long.")
    if len(password) > PASSWORD_MAX:
        raise IdentityPolicyError(f"A password must be at most {PASSWORD_MAX} characters long.")
    if password.strip().lower() == username.strip().lower():
        raise IdentityPolicyError("A password must not be the same as the username.")


def normalise_roles(roles: Iterable[str]) -> list[Role]:
    """Known roles, each once, in a fixed order; at least one."""
    wanted: set[Role] = set()
    for raw in roles:
        try:
            wanted.add(Role(str(raw).strip().lower()))
        except ValueError:
            raise IdentityPolicyError(
                f"Unknown role {str(raw)!r}; the roles are {', '.join(ROLE_ORDER)}."
            ) from None
    if not wanted:
        raise IdentityPolicyError("A user needs at least one role.")
    return [role for role in ROLE_ORDER if role in wanted]


def has_control_characters(text: str) -> bool:
    """True when `text` holds a control character other than tab, line feed or carriage return."""
    return _CONTROL_CHARS.search(text) is not None


def _one_line_label(raw: str, *, what: str, missing: str, max_len: int) -> str:
    """Spaces folded, no control characters, not empty, not too long."""
    if has_control_characters(raw):
        raise IdentityPolicyError(f"{what} must not contain control characters.")
    name = " ".join(raw.split())
    if not name:
        raise IdentityPolicyError(missing)
    if len(name) > max_len:
        raise IdentityPolicyError(f"{what} must be at most {max_len} characters long.")
    return name


def normalise_display_name(raw: str) -> str:
    return _one_line_label(
        raw,
        what="A display name",
        missing="A display name is required.",
        max_len=DISPLAY_NAME_MAX,
    )


def normalise_token_name(raw: str) -> str:
    return _one_line_label(
        raw,
        what="An API token name",
        missing="An API token needs a name saying what uses it.",
        max_len=TOKEN_NAME_MAX,
    )


def check_reason(reason: str) -> str:
    """A reason for the audit trail: free text, line breaks allowed, no other control
    characters."""
    if has_control_characters(reason):
        raise IdentityPolicyError("A reason must not contain control characters.")
    return reason


def has_any_role(user_roles: Iterable[str], required: Iterable[Role]) -> bool:
    """True when `required` is empty (any staff member) or the user holds one of them."""
    needed = set(required)
    return not needed or bool(needed & set(user_roles))


def roles_needed_sentence(required: Iterable[Role]) -> str:
    names = [role.value for role in ROLE_ORDER if role in set(required)]
    if len(names) == 1:
        return f"This needs the {names[0]} role."
    return f"This needs one of the roles {', '.join(names[:-1])} or {names[-1]}."


def password_stamp(password_changed_at: datetime) -> int:
    """Microseconds since the epoch: a session remembers it, so changing the password ends
    every session started with the old one."""
    return (password_changed_at - _EPOCH) // timedelta(microseconds=1)
