"""The Piccolo app of fulfilment.compounding: its own tables and its own migration chain."""

from __future__ import annotations

from core.manifest import context_app_config
from fulfilment.compounding.tables import TABLES

APP_CONFIG = context_app_config(
    "fulfilment.compounding",
    "compounding",
    TABLES,
    uses=("fulfilment.catalogue", "fulfilment.orders"),
)
