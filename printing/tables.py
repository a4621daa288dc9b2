"""Piccolo tables of printing (none yet: they arrive with issue 15 (Printing))."""

from __future__ import annotations

from typing import Any

TABLES: tuple[Any, ...] = ()
