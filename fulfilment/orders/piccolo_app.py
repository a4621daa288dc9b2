"""The Piccolo app of fulfilment.orders: its own tables and its own migration chain."""

from __future__ import annotations

from core.manifest import context_app_config
from fulfilment.orders.tables import TABLES

APP_CONFIG = context_app_config(
    "fulfilment.orders", "orders", TABLES, uses=("fulfilment.catalogue",)
)
