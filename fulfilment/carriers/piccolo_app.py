"""The Piccolo app of fulfilment.carriers: its own tables and its own migration chain."""

from __future__ import annotations

from core.manifest import context_app_config
from fulfilment.carriers.tables import TABLES

APP_CONFIG = context_app_config("fulfilment.carriers", "carriers", TABLES)
