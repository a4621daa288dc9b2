"""Piccolo tables of coldchain.packout (none yet: they arrive with issue 11 (Pack-out))."""

from __future__ import annotations

from typing import Any

TABLES: tuple[Any, ...] = ()
