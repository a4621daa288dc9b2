"""Piccolo tables of fulfilment.shipments (none yet: they arrive with issue 14 (Shipments))."""

from __future__ import annotations

from typing import Any

TABLES: tuple[Any, ...] = ()
