"""The audit key of this process (INFUSION_AUDIT_KEY, else derived from SECRET_KEY).

The key lives in the environment of the app and the workers, never in the database: that is
what stops someone with database access alone from re-hashing an edited chain.
"""

from __future__ import annotations

import functools

from core.settings import Settings, load_settings


@functools.cache
def _process_key() -> bytes:
    return load_settings().audit_key.encode()


def chain_key(settings: Settings | None = None) -> bytes:
    return settings.audit_key.encode() if settings is not None else _process_key()


def current_settings(settings: Settings | None) -> Settings:
    """The given settings, else the environment's as it is now (not cached: the anchor file
    follows INFUSION_DATA_DIR even when a process sets it after start, as the tests do)."""
    return settings if settings is not None else load_settings()
