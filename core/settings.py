"""One typed settings object, read from the environment once per process.

Every knob the product has is here, so the README's configuration table and the code cannot
drift apart without `tests/unit/test_settings.py` noticing.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from core.audit.model import derive_audit_key
from core.errors import ConfigurationError

ENVIRONMENTS = ("development", "test", "production")
LOG_FORMATS = ("console", "json")


@dataclass(frozen=True, kw_only=True)
class Setting:
    """Documentation of one environment variable (rendered into the README table)."""

    env: str
    default: str
    meaning: str


SETTINGS_DOC: tuple[Setting, ...] = (
    Setting(
        env="DATABASE_URL",
        default="embedded server under `.infusion/`",
        meaning="PostgreSQL DSN, e.g. `postgresql://user:pass@host:5432/infusion`",
    ),
    Setting(
        env="REDIS_URL",
        default="embedded server under `.infusion/`",
        meaning=(
            "Redis URL for the job queue, sessions and login throttling, e.g. `redis://host:6379/0`"
        ),
    ),
    Setting(
        env="SECRET_KEY",
        default="generated into `.infusion/secret_key` outside production",
        meaning="Keys the API-token hashes; at least 32 characters; required in production",
    ),
    Setting(
        env="SHIPPO_API_KEY",
        default="empty: offline sandbox",
        meaning="Shippo key; keys starting `shippo_test_` are test mode",
    ),
    Setting(
        env="INFUSION_TIMEZONE",
        default="`America/New_York`",
        meaning=(
            "The pharmacy's IANA time zone: local times on pages and documents, and the wall "
            "clock cron schedules run on (storage is UTC)"
        ),
    ),
    Setting(
        env="INFUSION_SITE_NAME",
        default="`Infusion Pharmacy (demo)`",
        meaning="Name shown on pages, labels and documents",
    ),
    Setting(
        env="INFUSION_PUBLIC_URL",
        default="`http://127.0.0.1:8000`",
        meaning="Public base URL; `https://` turns on Secure cookies",
    ),
    Setting(
        env="INFUSION_ENV",
        default="`development`",
        meaning="`development`, `test` or `production` (production refuses a missing `SECRET_KEY`)",
    ),
    Setting(
        env="INFUSION_DATA_DIR",
        default="`.infusion`",
        meaning="Folder for the embedded servers' data and the development secret",
    ),
    Setting(
        env="INFUSION_LOG_FORMAT",
        default="`console`",
        meaning="`console` (for people) or `json` (one object a line)",
    ),
    Setting(
        env="INFUSION_LOG_LEVEL",
        default="`INFO`",
        meaning="`DEBUG`, `INFO`, `WARNING` or `ERROR`",
    ),
    Setting(
        env="INFUSION_SESSION_HOURS",
        default="`12`",
        meaning="How long a staff login lasts",
    ),
    Setting(
        env="INFUSION_LOGIN_MAX_FAILURES",
        default="`5`",
        meaning="Failed logins per username and client address before login is refused",
    ),
    Setting(
        env="INFUSION_LOGIN_LOCKOUT_MINUTES",
        default="`15`",
        meaning="How long failures are counted and the lockout lasts",
    ),
    Setting(
        env="INFUSION_TRUSTED_PROXIES",
        default="empty: none",
        meaning=(
            "Comma-separated addresses or networks (`10.0.0.5`, `10.0.0.0/24`) of the reverse "
            "proxies in front; only from these is `X-Forwarded-For` believed as the client's "
            "address"
        ),
    ),
    Setting(
        env="INFUSION_AUDIT_KEY",
        default="derived from `SECRET_KEY`",
        meaning="Keys the audit trail's hash chain (HMAC); at least 32 characters; keep it "
        "out of the database and its backups, and never change it once events are written",
    ),
    Setting(
        env="INFUSION_APP_DATABASE_URL",
        default="empty: no separate role",
        meaning="For `infusion migrate`: the DSN the API and workers will use; migrate creates "
        "its role if missing and grants it what the app needs (it may not change or delete "
        "audit rows)",
    ),
    Setting(
        env="INFUSION_AUDIT_ANCHOR_FILE",
        default="`INFUSION_DATA_DIR/audit-anchor.jsonl`",
        meaning="File outside the database where the worker appends the audit chain's head "
        "every minute; `infusion audit verify` checks the trail still reaches it",
    ),
    Setting(
        env="INFUSION_SIGNATURE_MAX_FAILURES",
        default="`3`",
        meaning="Wrong passwords when e-signing, per person, before signing is refused",
    ),
    Setting(
        env="INFUSION_SIGNATURE_LOCKOUT_MINUTES",
        default="`15`",
        meaning="How long wrong e-signature passwords are counted and signing stays refused",
    ),
)


def settings_table() -> str:
    """The README's configuration table, exactly: the README shows these texts word for word
    (tests/unit/test_settings.py)."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{s.env}` | {s.default} | {s.meaning} |" for s in SETTINGS_DOC]
    return "\n".join(lines)


@dataclass(frozen=True, kw_only=True)
class Settings:
    database_url: str | None
    redis_url: str | None
    secret_key: str
    shippo_api_key: str
    timezone: str
    site_name: str
    public_url: str
    environment: str
    data_dir: Path
    log_format: str
    log_level: str
    session_hours: int
    login_max_failures: int
    login_lockout_minutes: int
    audit_key: str
    app_database_url: str | None
    audit_anchor_file: Path
    # Normalised addresses and networks; empty: every peer is the client itself.
    trusted_proxies: tuple[str, ...] = ()
    signature_max_failures: int = 3
    signature_lockout_minutes: int = 15
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def secure_cookies(self) -> bool:
        # Browsers drop Secure cookies on plain http, so only ask for them behind HTTPS.
        return self.public_url.startswith("https://")

    @property
    def shippo_test_mode(self) -> bool:
        return not self.shippo_api_key or self.shippo_api_key.startswith("shippo_test_")

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def with_urls(self, *, database_url: str, redis_url: str) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(database_url=database_url, redis_url=redis_url)
        return Settings(**values)


def _int(environ: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {value}")
    return value


def _choice(environ: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = environ.get(name, "").strip() or default
    if value not in allowed:
        raise ConfigurationError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _url(environ: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    value = environ.get(name, "").strip()
    if not value:
        return None
    if not value.startswith(tuple(f"{s}://" for s in schemes)):
        raise ConfigurationError(
            f"{name} must start with {' or '.join(s + '://' for s in schemes)}, got {value.split('://')[0]!r}"
        )
    return value


def _trusted_proxies(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The proxies whose X-Forwarded-For is believed. Anyone else could forge the header to
    walk around the per-address login throttle or to write what they like into the audit
    trail as their address, so only listed addresses count, and never "everyone"."""
    trusted: list[str] = []
    for item in environ.get("INFUSION_TRUSTED_PROXIES", "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            value = (
                str(ipaddress.ip_network(item, strict=False))
                if "/" in item
                else str(ipaddress.ip_address(item))
            )
        except ValueError:
            raise ConfigurationError(
                f"INFUSION_TRUSTED_PROXIES: {item!r} is not an IP address or network "
                "such as 10.0.0.5 or 10.0.0.0/24"
            ) from None
        trusted.append(value)
    return tuple(trusted)


def _secret_key(environ: Mapping[str, str], environment: str, data_dir: Path) -> str:
    value = environ.get("SECRET_KEY", "").strip()
    if value:
        if len(value) < 32:
            raise ConfigurationError("SECRET_KEY must be at least 32 characters long")
        return value
    if environment == "production":
        raise ConfigurationError("SECRET_KEY must be set when INFUSION_ENV=production")
    # Outside production a random key is kept in the data folder so logins survive restarts.
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def _audit_key(environ: Mapping[str, str], secret_key: str) -> str:
    value = environ.get("INFUSION_AUDIT_KEY", "").strip()
    if not value:
        return derive_audit_key(secret_key)
    if len(value) < 32:
        raise ConfigurationError("INFUSION_AUDIT_KEY must be at least 32 characters long")
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the environment; raise ConfigurationError with one clear sentence."""
    env = os.environ if environ is None else environ
    environment = _choice(env, "INFUSION_ENV", "development", ENVIRONMENTS)
    data_dir = Path(env.get("INFUSION_DATA_DIR", "").strip() or ".infusion").expanduser().absolute()
    timezone = env.get("INFUSION_TIMEZONE", "").strip() or "America/New_York"
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"INFUSION_TIMEZONE {timezone!r} is not an IANA time zone"
        ) from None
    public_url = (env.get("INFUSION_PUBLIC_URL", "").strip() or "http://127.0.0.1:8000").rstrip("/")
    if not public_url.startswith(("http://", "https://")):
        raise ConfigurationError("INFUSION_PUBLIC_URL must start with http:// or https://")
    log_level = (env.get("INFUSION_LOG_LEVEL", "").strip() or "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigurationError(
            f"INFUSION_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}"
        )
    secret_key = _secret_key(env, environment, data_dir)
    anchor_file = env.get("INFUSION_AUDIT_ANCHOR_FILE", "").strip()
    return Settings(
        database_url=_url(env, "DATABASE_URL", ("postgresql", "postgres")),
        redis_url=_url(env, "REDIS_URL", ("redis", "rediss", "unix")),
        secret_key=secret_key,
        shippo_api_key=env.get("SHIPPO_API_KEY", "").strip(),
        timezone=timezone,
        site_name=env.get("INFUSION_SITE_NAME", "").strip() or "Infusion Pharmacy (demo)",
        public_url=public_url,
        environment=environment,
        data_dir=data_dir,
        log_format=_choice(env, "INFUSION_LOG_FORMAT", "console", LOG_FORMATS),
        log_level=log_level,
        session_hours=_int(env, "INFUSION_SESSION_HOURS", 12, 1),
        login_max_failures=_int(env, "INFUSION_LOGIN_MAX_FAILURES", 5, 1),
        login_lockout_minutes=_int(env, "INFUSION_LOGIN_LOCKOUT_MINUTES", 15, 1),
        audit_key=_audit_key(env, secret_key),
        app_database_url=_url(env, "INFUSION_APP_DATABASE_URL", ("postgresql", "postgres")),
        audit_anchor_file=(
            Path(anchor_file).expanduser().absolute()
            if anchor_file
            else data_dir / "audit-anchor.jsonl"
        ),
        trusted_proxies=_trusted_proxies(env),
        signature_max_failures=_int(env, "INFUSION_SIGNATURE_MAX_FAILURES", 3, 1),
        signature_lockout_minutes=_int(env, "INFUSION_SIGNATURE_LOCKOUT_MINUTES", 15, 1),
    )
