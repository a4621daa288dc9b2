from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder
from piccolo.columns.column_types import Varchar

ID = "2026-11-22T00:46:37:491237"
VERSION = "1.38.0"
PARENT = "2026-11-21T23:38:09:000000"  # the migration before this one
DESCRIPTION = "outbox job ids unique only among pending runs"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="core", description=DESCRIPTION
    )

    manager.alter_column(
        table_class_name="OutboxJob",
        tablename="outbox_job",
        column_name="job_id",
        db_column_name="job_id",
        params={"unique": False, "index": True},
        old_params={"unique": True, "index": False},
        column_class=Varchar,
        old_column_class=Varchar,
        schema=None,
    )

    async def pending_unique() -> None:
        # One pending run per job id; done and failed rows may repeat it.
        await engine_finder().run_ddl(
            "CREATE UNIQUE INDEX IF NOT EXISTS outbox_job_pending_job_id ON outbox_job (job_id)"
            " WHERE done_at IS NULL AND failed_at IS NULL"
        )

    async def drop_pending_unique() -> None:
        await engine_finder().run_ddl("DROP INDEX IF EXISTS outbox_job_pending_job_id")

    manager.add_raw(pending_unique)
    manager.add_raw_backwards(drop_pending_unique)

    return manager
