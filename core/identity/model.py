"""Pure rules of staff identity: roles, usernames, passwords, display names. No I/O.

Every refusal is an `IdentityPolicyError` (422) carrying one sentence a person can act on.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Container, Iterable
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

# Roles that take two admins to grant (two-person rule): with either, one person could
# otherwise make an account that verifies product or manages accounts, sign in as it and
# approve their own work. Granting these through the API opens a request that a second admin
# approves; the demo seed and `infusion users create` on the server's shell are the exceptions.
PRIVILEGED_ROLES: frozenset[Role] = frozenset({Role.admin, Role.pharmacist})

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


# The password published in the README for the fictional demo accounts. Anyone can read it,
# so it is refused as a new password everywhere but on a developer's machine; the demo seed
# itself is the one place that sets it (core.identity.seed).
DEMO_PASSWORD = "infusion-demo-2026"  # noqa: S105  (published on purpose; refused outside dev)
# Words of this service a person is likely to build a password from (NIST SP 800-63B 5.1.1.2:
# "context-specific words, such as the name of the service, the username").
CONTEXT_WORDS = frozenset({"infusion", "infusions", "pharmacy", "pharmacist", "password"})
_NOT_LETTERS = re.compile(r"[^a-z]+")
_DIGITS = frozenset("0123456789")  # ASCII only: "²".isdigit() is True but int("²") fails


def check_password(
    password: str,
    *,
    username: str,
    common: Container[str] = frozenset(),
    allow_demo_password: bool = False,
) -> None:
    """NIST SP 800-63B 5.1.1.2 for a password a person chooses (or an admin sets):

    - 12 to 1024 characters, at least 12 of them once surrounding whitespace (any Unicode
      space) is stripped, and not whitespace only; any characters but control characters (a
      NUL or an escape sequence cannot be typed at a sign-in form and garbles terminals and
      logs); spaces inside and every other Unicode character are allowed;
    - no composition rules (no "one digit, one capital"): they make passwords harder to
      remember without making them harder to guess;
    - not a known common or breached password: `common` holds them lower-cased
      (core.identity.common_passwords) and the check ignores case and surrounding spaces;
    - not the username, the service's name or one of them with digits and symbols around it,
      nor one character or a short run repeated, nor a plain sequence (`abcdefghijkl`);
    - not the published demo password, unless `allow_demo_password` (development only).
    """
    if has_password_control_characters(password):
        raise IdentityPolicyError("A password must not contain control characters.")
    if len(password) < PASSWORD_MIN:
        raise IdentityPolicyError(f"A password must be at least {PASSWORD_MIN} characters long.")
    if len(password) > PASSWORD_MAX:
        raise IdentityPolicyError(f"A password must be at most {PASSWORD_MAX} characters long.")
    # The other checks compare the password without surrounding spaces (a pasted password
    # often carries some), so the minimum counts what is left: twelve spaces, or two letters
    # and ten spaces, are not twelve characters anyone has to guess. Spaces inside stay.
    core = password.strip()
    if not core:
        raise IdentityPolicyError("A password must not be made of spaces only.")
    if len(core) < PASSWORD_MIN:
        raise IdentityPolicyError(
            f"A password must be at least {PASSWORD_MIN} characters long, not counting spaces "
            "at the start or end."
        )
    folded = core.lower()
    name = username.strip().lower()
    if folded == name:
        raise IdentityPolicyError("A password must not be the same as the username.")
    if folded == DEMO_PASSWORD and not allow_demo_password:
        raise IdentityPolicyError(
            "The demo password is published; choose a password nobody else knows."
        )
    if folded in common:
        raise IdentityPolicyError(
            "This password is on a list of common or breached passwords; choose another."
        )
    letters = _NOT_LETTERS.sub("", folded)
    if letters and letters in {*CONTEXT_WORDS, _NOT_LETTERS.sub("", name)}:
        raise IdentityPolicyError(
            "A password must be more than the username or this service's name with digits "
            "or symbols added."
        )
    if is_repetitive_or_sequential(folded):
        raise IdentityPolicyError(
            "A password must not be one character or a short run repeated, or a plain "
            "sequence such as abcdefghijkl or 123456789012."
        )


def has_password_control_characters(password: str) -> bool:
    """Any control character at all, tab and line breaks included: none belongs in a
    password typed into a sign-in form."""
    return any(unicodedata.category(ch) == "Cc" for ch in password)


def is_repetitive_or_sequential(text: str) -> bool:
    """One unit of up to 4 characters repeated (`aaaaaaaaaaaa`, `abcabcabcabc`), or each
    character one after (or one before) the last (`abcdefghijkl`, `987654321098`; digits
    wrap from 9 to 0)."""
    for unit in range(1, 5):
        if len(text) >= 2 * unit and text == (text[:unit] * (len(text) // unit + 1))[: len(text)]:
            return True
    steps = {_step(a, b) for a, b in itertools.pairwise(text)}
    return steps == {1} or steps == {-1}


def _step(a: str, b: str) -> int:
    if a in _DIGITS and b in _DIGITS:
        return (int(b) - int(a) + 5) % 10 - 5
    return ord(b) - ord(a)


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


def split_privileged(roles: Iterable[Role]) -> tuple[list[Role], list[Role]]:
    """(roles granted at once, roles that need a second admin's approval), each in order."""
    wanted = set(roles)
    now = [role for role in ROLE_ORDER if role in wanted and role not in PRIVILEGED_ROLES]
    later = [role for role in ROLE_ORDER if role in wanted and role in PRIVILEGED_ROLES]
    return now, later


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


# Zero-width non-joiner and joiner are format characters too, but Persian, Hindi and other
# scripts need them to spell names correctly; neither reorders or hides text.
_JOINERS = frozenset("\u200c\u200d")


def has_format_characters(text: str) -> bool:
    """True when `text` holds an invisible format character (Unicode category Cf) other than
    the joiners: bidi overrides and isolates (U+202A-202E, U+2066-2069), marks (U+200E/F),
    zero-width spaces, soft hyphens, tags."""
    return any(unicodedata.category(ch) == "Cf" and ch not in _JOINERS for ch in text)


def normalise_display_name(raw: str) -> str:
    """The printed name on e-signatures and labels (21 CFR 11.50): besides the label rules,
    no invisible format characters, or a right-to-left override could make "Dr Amy Lee"
    display as another name than the one stored and signed."""
    if has_format_characters(raw):
        raise IdentityPolicyError(
            "A display name must not contain invisible formatting characters, such as "
            "right-to-left overrides."
        )
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


def password_stamp(credentials_changed_at: datetime) -> int:
    """Microseconds since the epoch of the account's `credentials_changed_at`: a session
    remembers it, so a password change, an admin's reset or a deactivation ends every session
    started before it, for good (reactivating the account does not move it back)."""
    return (credentials_changed_at - _EPOCH) // timedelta(microseconds=1)
