"""Piccolo tables of fulfilment.orders (none yet: they arrive with issue 9 (Orders))."""

from __future__ import annotations

from typing import Any

TABLES: tuple[Any, ...] = ()
