"""Piccolo tables of fulfilment.compounding (none yet: they arrive with issue 10 (Compounding))."""

from __future__ import annotations

from typing import Any

TABLES: tuple[Any, ...] = ()
