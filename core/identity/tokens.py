"""API tokens as text: `inf_<prefix>_<secret>`, and the keyed hash that is all we store.

The prefix (8 hex characters) is stored in clear so a person can tell tokens apart in a list;
the whole token is stored only as HMAC-SHA256 keyed with SECRET_KEY, so a copy of the database
alone does not let anyone use or even test a token offline. No I/O here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

TOKEN_SCHEME = "inf"  # noqa: S105  (a label, not a secret)
PREFIX_HEX_CHARS = 8
_SECRET_BYTES = 32
# token_urlsafe(32) is 43 characters of [A-Za-z0-9_-].
_TOKEN = re.compile(r"inf_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")


def new_token() -> tuple[str, str]:
    """A fresh random token and its prefix: (plaintext, prefix)."""
    prefix = secrets.token_hex(PREFIX_HEX_CHARS // 2)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return f"{TOKEN_SCHEME}_{prefix}_{secret}", prefix


def parse_token(plaintext: str) -> str | None:
    """The prefix of a well-formed token, else None (not worth a database lookup)."""
    match = _TOKEN.fullmatch(plaintext)
    return match.group(1) if match else None


def token_hash(plaintext: str, secret_key: str) -> str:
    """64 hex characters: HMAC-SHA256 of the whole token, keyed with SECRET_KEY."""
    return hmac.new(secret_key.encode(), plaintext.encode(), hashlib.sha256).hexdigest()
