"""Pure rules around the audit trail's integrity: the app role's DSN, sign-in markers."""

from __future__ import annotations

import re

import pytest

from core.db_roles import AppRole, app_role_of
from core.errors import ConfigurationError
from core.identity.sign_in_events import failure_reason, unknown_username_marker

KEY = b"k" * 32


def test_the_app_role_comes_from_the_dsn_user_and_password():
    assert app_role_of("postgresql://infusion_app:p%40ss%7Bx%7D@db:5432/inf") == AppRole(
        name="infusion_app", password="p@ss{x}"
    )
    assert app_role_of("postgres://reader@db/inf") == AppRole(name="reader", password=None)


def test_a_dsn_without_a_user_is_refused():
    with pytest.raises(ConfigurationError) as caught:
        app_role_of("postgresql://db:5432/inf")
    assert caught.value.message == (
        "INFUSION_APP_DATABASE_URL must name a user (postgresql://user:…)"
    )


def test_an_unknown_username_is_kept_only_as_a_short_keyed_marker():
    marker = unknown_username_marker("  My-Password-2026 ", KEY)
    assert re.fullmatch(r"unknown:[0-9a-f]{12}", marker)
    assert "password" not in marker.lower()
    # The same name (however typed) gives the same marker; another name or key does not.
    assert unknown_username_marker("my-password-2026", KEY) == marker
    assert unknown_username_marker("my-password-2027", KEY) != marker
    assert unknown_username_marker("my-password-2026", b"o" * 32) != marker


def test_failure_reasons():
    class Account:
        id = 1

    assert failure_reason(None, password_matched=False) == "unknown_username"
    assert failure_reason(Account(), password_matched=False) == "wrong_password"  # type: ignore[arg-type]
    assert failure_reason(Account(), password_matched=True) == "inactive_account"  # type: ignore[arg-type]


# ---------------------------------------------------------------- settings


def settings_env(tmp_path, **values: str) -> dict[str, str]:
    return {"INFUSION_DATA_DIR": str(tmp_path), "SECRET_KEY": "s" * 40, **values}


def test_the_audit_key_defaults_to_a_derivation_of_the_secret_key(tmp_path):
    from core.audit.model import derive_audit_key
    from core.settings import load_settings

    settings = load_settings(settings_env(tmp_path))
    assert settings.audit_key == derive_audit_key("s" * 40)
    assert settings.audit_key != settings.secret_key
    given = load_settings(settings_env(tmp_path, INFUSION_AUDIT_KEY="a" * 32))
    assert given.audit_key == "a" * 32


def test_a_short_audit_key_is_refused(tmp_path):
    from core.settings import load_settings

    with pytest.raises(ConfigurationError) as caught:
        load_settings(settings_env(tmp_path, INFUSION_AUDIT_KEY="short"))
    assert caught.value.message == "INFUSION_AUDIT_KEY must be at least 32 characters long"


def test_the_anchor_file_and_app_dsn_settings(tmp_path):
    from core.settings import load_settings

    defaults = load_settings(settings_env(tmp_path))
    assert (defaults.audit_anchor_file, defaults.app_database_url) == (
        tmp_path / "audit-anchor.jsonl",
        None,
    )
    given = load_settings(
        settings_env(
            tmp_path,
            INFUSION_AUDIT_ANCHOR_FILE=str(tmp_path / "elsewhere" / "a.jsonl"),
            INFUSION_APP_DATABASE_URL="postgresql://infusion_app:pw@db/inf",
        )
    )
    assert (given.audit_anchor_file, given.app_database_url) == (
        tmp_path / "elsewhere" / "a.jsonl",
        "postgresql://infusion_app:pw@db/inf",
    )
    with pytest.raises(ConfigurationError) as caught:
        load_settings(settings_env(tmp_path, INFUSION_APP_DATABASE_URL="mysql://x@db/inf"))
    assert caught.value.message == (
        "INFUSION_APP_DATABASE_URL must start with postgresql:// or postgres://, got 'mysql'"
    )
