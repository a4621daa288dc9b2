"""Piccolo tables of fulfilment.catalogue (none yet: they arrive with issue 8 (Catalogue))."""

from __future__ import annotations

from typing import Any

TABLES: tuple[Any, ...] = ()
