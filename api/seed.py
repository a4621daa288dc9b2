"""The fictional demo: every context seeds its own part (its manifest's `seed`), idempotently,
in the order of api/contexts.py (dependency order)."""

from __future__ import annotations

from api.contexts import manifests
from core.errors import ConfigurationError
from core.manifest import SeedReport
from core.settings import Settings

__all__ = ["SeedReport", "seed_demo"]


async def seed_demo(settings: Settings) -> SeedReport:
    from core import db

    if settings.environment == "production":
        # The demo accounts have published passwords (README): never on a live system.
        raise ConfigurationError(
            "The demo data is refused when INFUSION_ENV=production: its accounts have "
            "published passwords. Create real accounts with `infusion users create`."
        )
    report = SeedReport()
    async with db.transaction():
        for manifest in manifests():
            if manifest.seed is not None:
                await manifest.seed(report)
    return report
