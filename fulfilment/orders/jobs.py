"""arq jobs of fulfilment.orders: they take ids, reload, and are idempotent (none yet)."""

from __future__ import annotations

from core.queue import JobDef

JOBS: tuple[JobDef, ...] = ()
