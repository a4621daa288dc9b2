from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-12-01T21:20:01:000000"
VERSION = "1.38.0"
PARENT = "2026-12-01T21:20:00:000000"  # the migration before this one
DESCRIPTION = (
    "Backfill credentials_changed_at from password_changed_at (sessions in Redis stay "
    "valid); one pending request per user and role; request states checked"
)


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="core", description=DESCRIPTION
    )

    async def backfill_and_constrain() -> None:
        # A separate migration because Piccolo runs raw steps before a migration's own
        # add_column steps: the columns exist by now.
        engine = engine_finder()
        await engine.run_ddl(
            "UPDATE app_user SET credentials_changed_at = password_changed_at"
        )
        await engine.run_ddl(
            "CREATE UNIQUE INDEX IF NOT EXISTS role_grant_request_one_pending"
            " ON role_grant_request (\"user\", role) WHERE state = 'pending'"
        )
        await engine.run_ddl(
            "ALTER TABLE role_grant_request ADD CONSTRAINT role_grant_request_state"
            " CHECK (state IN ('pending', 'approved', 'rejected'))"
        )
        await engine.run_ddl(
            "ALTER TABLE role_grant_request ADD CONSTRAINT role_grant_request_decided"
            " CHECK ((state = 'pending') = (decided_at IS NULL))"
        )

    async def undo() -> None:
        engine = engine_finder()
        await engine.run_ddl(
            "ALTER TABLE role_grant_request DROP CONSTRAINT IF EXISTS role_grant_request_decided"
        )
        await engine.run_ddl(
            "ALTER TABLE role_grant_request DROP CONSTRAINT IF EXISTS role_grant_request_state"
        )
        await engine.run_ddl("DROP INDEX IF EXISTS role_grant_request_one_pending")

    manager.add_raw(backfill_and_constrain)
    manager.add_raw_backwards(undo)

    return manager
