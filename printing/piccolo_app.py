"""The Piccolo app of printing: its own tables and its own migration chain."""

from __future__ import annotations

from core.manifest import context_app_config
from printing.tables import TABLES

APP_CONFIG = context_app_config("printing", "printing", TABLES)
