from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-11-21T23:38:09:000000"
VERSION = "1.38.0"
PARENT = "2026-11-21T23:38:08:034182"  # the migration before this one
DESCRIPTION = "audit_event is append-only (trigger)"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="core", description=DESCRIPTION)

    async def audit_append_only() -> None:
        # The audit trail is evidence (USP <797> records, dispatch approvals): the database
        # itself refuses to change or delete it, not only the application.
        db = engine_finder()
        await db.run_ddl(
            """
            CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'audit_event is append-only (% refused)', TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        await db.run_ddl(
            "CREATE TRIGGER audit_event_append_only"
            " BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_event"
            " FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()"
        )

    async def drop_audit_append_only() -> None:
        db = engine_finder()
        await db.run_ddl("DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event")
        await db.run_ddl("DROP FUNCTION IF EXISTS audit_event_append_only()")

    manager.add_raw(audit_append_only)
    manager.add_raw_backwards(drop_audit_append_only)

    return manager
