"""Fictional demo staff, one per role plus a second pharmacist (verification and dispatch
approval need "another person", so a demo needs two)."""

from __future__ import annotations

from core.identity.model import Role
from core.identity.services import create_user
from core.identity.tables import User
from core.manifest import SeedReport

DEMO_PASSWORD = "infusion-demo-2026"  # noqa: S105  (fictional demo, printed by `infusion dev`)
DEMO_ACTOR = "system:seed"

DEMO_USERS: tuple[tuple[str, str, tuple[Role, ...]], ...] = (
    ("admin", "Avery Admin (demo)", (Role.admin,)),
    ("pharmacist", "Dr. Priya Raman, PharmD (demo)", (Role.pharmacist,)),
    ("pharmacist2", "Dr. Marcus Lee, PharmD (demo)", (Role.pharmacist,)),
    ("technician", "Jordan Ellis, CPhT (demo)", (Role.technician,)),
    ("packer", "Sam Ortiz (demo)", (Role.packer,)),
)


async def seed_users(report: SeedReport) -> None:
    """Create the demo staff that do not exist yet (skips existing usernames).

    A login is listed in `report.logins` while its password was never changed after the seed
    made it, so the `infusion dev` banner does not show a password that no longer works.
    """
    created = 0
    for username, display_name, roles in DEMO_USERS:
        existing = await User.objects().where(User.username == username).first()
        if existing is None:
            await create_user(
                username=username,
                display_name=display_name,
                password=DEMO_PASSWORD,
                roles=roles,
                actor=DEMO_ACTOR,
            )
            created += 1
        elif not existing.is_active or existing.password_changed_at != existing.created_at:
            # Someone set another password since the seed made this account (or it was made
            # by hand): its demo password may no longer work, so it is not advertised.
            continue
        report.logins.append((username, DEMO_PASSWORD, ", ".join(role.value for role in roles)))
    report.add("users", created)
