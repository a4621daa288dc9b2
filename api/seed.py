"""The fictional demo: every domain seeds its own part, idempotently, in dependency order."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import ConfigurationError
from core.settings import Settings


@dataclass
class SeedReport:
    created: dict[str, int] = field(default_factory=dict)
    logins: list[tuple[str, str, str]] = field(default_factory=list)

    def summary(self) -> str:
        made = ", ".join(f"{n} {what}" for what, n in self.created.items() if n)
        return f"demo data: created {made}" if made else "demo data: already present"


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
        for seeder in _seeders():
            await seeder(report)
    return report


def _seeders() -> list:  # type: ignore[type-arg]
    from core.identity.seed import seed_users

    return [seed_users]
