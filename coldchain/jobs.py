"""arq jobs of the `coldchain` domain: they take ids, reload, and are idempotent."""

from __future__ import annotations

from typing import Any

JOBS: list[Any] = []
CRON: list[Any] = []
