"""Piccolo tables of fulfilment.carriers (none yet: they arrive with issue 13 (Carriers))."""

from __future__ import annotations

from typing import Any

TABLES: tuple[Any, ...] = ()
