"""Settings come from the environment once, with one clear sentence for each bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigurationError
from core.settings import SETTINGS_DOC, Settings, load_settings, settings_table

KEY = "k" * 40


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"INFUSION_DATA_DIR": str(tmp_path), "SECRET_KEY": KEY, **values}


def test_defaults(tmp_path):
    s = load_settings(env(tmp_path))
    assert (s.database_url, s.redis_url) == (None, None)
    assert (s.environment, s.timezone, s.public_url) == (
        "development",
        "America/New_York",
        "http://127.0.0.1:8000",
    )
    assert (s.session_hours, s.login_max_failures, s.login_lockout_minutes) == (12, 5, 15)
    assert (s.secure_cookies, s.shippo_test_mode) == (False, True)
    assert s.data_dir == tmp_path
    assert s.trusted_proxies == ()


def test_trusted_proxies_are_addresses_and_networks(tmp_path):
    s = load_settings(
        env(tmp_path, INFUSION_TRUSTED_PROXIES=" 10.0.0.5, 10.1.2.3/16,,::1 ,fd00::/8")
    )
    assert s.trusted_proxies == ("10.0.0.5", "10.1.0.0/16", "::1", "fd00::/8")


def test_urls_and_https(tmp_path):
    s = load_settings(
        env(
            tmp_path,
            DATABASE_URL="postgresql://u:p@db:5432/inf",
            REDIS_URL="redis://r:6379/0",
            INFUSION_PUBLIC_URL="https://pharmacy.example/",
            SHIPPO_API_KEY="shippo_live_abc",
        )
    )
    assert (s.database_url, s.redis_url) == ("postgresql://u:p@db:5432/inf", "redis://r:6379/0")
    assert (s.public_url, s.secure_cookies, s.shippo_test_mode) == (
        "https://pharmacy.example",
        True,
        False,
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"DATABASE_URL": "sqlite:///x.db"},
            "DATABASE_URL must start with postgresql:// or postgres://, got 'sqlite'",
        ),
        (
            {"REDIS_URL": "http://r"},
            "REDIS_URL must start with redis:// or rediss:// or unix://, got 'http'",
        ),
        ({"SECRET_KEY": "short"}, "SECRET_KEY must be at least 32 characters long"),
        (
            {"INFUSION_TIMEZONE": "Mars/Olympus"},
            "INFUSION_TIMEZONE 'Mars/Olympus' is not an IANA time zone",
        ),
        ({"INFUSION_SESSION_HOURS": "0"}, "INFUSION_SESSION_HOURS must be at least 1, got 0"),
        (
            {"INFUSION_LOG_FORMAT": "xml"},
            "INFUSION_LOG_FORMAT must be one of console, json, got 'xml'",
        ),
        (
            {"INFUSION_LOG_LEVEL": "loud"},
            "INFUSION_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got 'LOUD'",
        ),
        (
            {"INFUSION_PUBLIC_URL": "pharmacy.example"},
            "INFUSION_PUBLIC_URL must start with http:// or https://",
        ),
        (
            {"INFUSION_TRUSTED_PROXIES": "10.0.0.5, *"},
            "INFUSION_TRUSTED_PROXIES: '*' is not an IP address or network such as 10.0.0.5 "
            "or 10.0.0.0/24",
        ),
        (
            {"INFUSION_TRUSTED_PROXIES": "proxy.internal"},
            "INFUSION_TRUSTED_PROXIES: 'proxy.internal' is not an IP address or network such "
            "as 10.0.0.5 or 10.0.0.0/24",
        ),
    ],
)
def test_bad_values_are_refused_with_a_sentence(tmp_path, values, message):
    with pytest.raises(ConfigurationError) as caught:
        load_settings(env(tmp_path, **values))
    assert caught.value.message == message


def test_production_requires_a_secret_key(tmp_path):
    values = env(tmp_path, INFUSION_ENV="production")
    del values["SECRET_KEY"]
    with pytest.raises(
        ConfigurationError, match="SECRET_KEY must be set when INFUSION_ENV=production"
    ):
        load_settings(values)
    assert not (tmp_path / "secret_key").exists()


def test_development_keeps_a_generated_key_across_restarts(tmp_path):
    values = env(tmp_path)
    del values["SECRET_KEY"]
    first = load_settings(values).secret_key
    assert len(first) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert load_settings(values).secret_key == first


def test_with_urls_keeps_everything_else(tmp_path):
    s = load_settings(env(tmp_path, INFUSION_SITE_NAME="Test Pharmacy"))
    t = s.with_urls(database_url="postgresql://x/y", redis_url="redis://z/0")
    assert (t.database_url, t.redis_url, t.site_name, t.secret_key) == (
        "postgresql://x/y",
        "redis://z/0",
        "Test Pharmacy",
        KEY,
    )
    assert isinstance(t, Settings)


def test_readme_documents_every_setting():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [s.env for s in SETTINGS_DOC if f"`{s.env}`" not in readme]
    assert missing == []
    # Word for word: every row's default and meaning are the setting's own texts.
    assert settings_table() in readme, (
        "README's configuration table differs from core/settings.py; paste:\n" + settings_table()
    )
