"""The Piccolo app of fulfilment.shipments: its own tables and its own migration chain."""

from __future__ import annotations

from core.manifest import context_app_config
from fulfilment.shipments.tables import TABLES

APP_CONFIG = context_app_config(
    "fulfilment.shipments", "shipments", TABLES, uses=("fulfilment.carriers",)
)
