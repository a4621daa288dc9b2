"""Piccolo tables of coldchain.loggers (none yet: they arrive with issue 12 (Loggers))."""

from __future__ import annotations

from typing import Any

TABLES: tuple[Any, ...] = ()
