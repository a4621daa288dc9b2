"""API token text: its shape, its prefix, and the keyed hash that is stored."""

from __future__ import annotations

import hashlib
import hmac

from core.identity.tokens import new_token, parse_token, token_hash

KEY = "k" * 40


def test_a_new_token_has_the_documented_shape_and_its_prefix():
    plaintext, prefix = new_token()

    scheme, token_prefix, secret = plaintext.split("_", 2)
    assert (scheme, token_prefix) == ("inf", prefix)
    assert len(prefix) == 8
    assert int(prefix, 16) >= 0
    assert len(secret) == 43
    assert parse_token(plaintext) == prefix


def test_tokens_are_unique():
    assert len({new_token()[0] for _ in range(1000)}) == 1000


def test_malformed_tokens_are_not_parsed():
    plaintext, _ = new_token()
    for bad in (
        "",
        "inf_",
        plaintext[:-1],
        plaintext + "x",
        "xyz" + plaintext[3:],
        plaintext.replace("inf_", "INF_"),
        f" {plaintext}",
        "inf_ABCDEFGH_" + "a" * 43,
    ):
        assert parse_token(bad) is None, bad


def test_the_stored_hash_is_hmac_sha256_with_the_secret_key():
    plaintext, _ = new_token()

    stored = token_hash(plaintext, KEY)

    assert stored == hmac.new(KEY.encode(), plaintext.encode(), hashlib.sha256).hexdigest()
    assert len(stored) == 64
    assert plaintext not in stored
    # Another SECRET_KEY gives another hash: a copied table is useless without the key.
    assert token_hash(plaintext, "o" * 40) != stored
