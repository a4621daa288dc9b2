from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-12-01T20:31:11:000000"
VERSION = "1.38.0"
PARENT = "2026-12-01T20:31:10:502809"  # the migration before this one
# Piccolo runs raw steps before a migration's column changes: this one needs started_at, so it
# is a migration of its own after the one that adds the column.
DESCRIPTION = "outbox: one run not yet started per job id (dedupe only against those)"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="core", description=DESCRIPTION
    )

    async def not_started_unique() -> None:
        # One run that has not started per job id: work enqueued while a run of it is running
        # gets a run of its own (which waits for the running one), instead of being dropped.
        await engine_finder().run_ddl("DROP INDEX IF EXISTS outbox_job_pending_job_id")
        await engine_finder().run_ddl(
            "CREATE UNIQUE INDEX outbox_job_pending_job_id ON outbox_job (job_id)"
            " WHERE started_at IS NULL AND done_at IS NULL AND failed_at IS NULL"
        )

    async def pending_unique() -> None:
        await engine_finder().run_ddl("DROP INDEX IF EXISTS outbox_job_pending_job_id")
        await engine_finder().run_ddl(
            "CREATE UNIQUE INDEX outbox_job_pending_job_id ON outbox_job (job_id)"
            " WHERE done_at IS NULL AND failed_at IS NULL"
        )

    manager.add_raw(not_started_unique)
    manager.add_raw_backwards(pending_unique)

    return manager
