"""Apply Piccolo migrations for every app, in dependency order, idempotently."""

from __future__ import annotations

import contextlib
import io

from core.errors import ConfigurationError


async def run_migrations(database_url: str) -> int:
    """Run what has not run yet; return how many migrations were applied."""
    from piccolo.apps.migrations.commands.forwards import run_forwards
    from piccolo.apps.migrations.tables import Migration

    from core import db
    from core.db_roles import secure_after_migrations

    db.configure(database_url)
    await _check_reachable()
    before = await _count(Migration)
    # Piccolo prints a progress table; keep the CLI output to one line.
    with contextlib.redirect_stdout(io.StringIO()) as out:
        result = await run_forwards("all")
    if not result.success:
        raise ConfigurationError(f"Migrations failed: {result.message or out.getvalue()[-500:]}")
    await secure_after_migrations()
    return await _count(Migration) - before


async def _count(migration_table: type) -> int:
    if not await migration_table.table_exists():  # type: ignore[attr-defined]
        return 0
    return await migration_table.count()  # type: ignore[attr-defined]


async def _check_reachable() -> None:
    from core import db

    try:
        await db.fetch("SELECT 1")
    except (OSError, ConnectionError) as exc:
        raise ConfigurationError(
            f"PostgreSQL is not reachable at DATABASE_URL ({type(exc).__name__})"
        ) from None
