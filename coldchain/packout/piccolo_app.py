"""The Piccolo app of coldchain.packout: its own tables and its own migration chain."""

from __future__ import annotations

from coldchain.packout.tables import TABLES
from core.manifest import context_app_config

APP_CONFIG = context_app_config("coldchain.packout", "packout", TABLES)
