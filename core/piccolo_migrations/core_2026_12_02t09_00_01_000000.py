from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Timestamptz
from piccolo.columns.defaults.timestamptz import TimestamptzNow

ID = "2026-12-02T09:00:01:000000"
VERSION = "1.38.0"
PARENT = "2026-12-02T09:00:00:000000"  # the migration before this one
DESCRIPTION = "timestamps come from core.clock: no database-clock defaults on users, tokens, role requests and audit events"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="core", description=DESCRIPTION
    )

    manager.alter_column(
        table_class_name="User",
        tablename="app_user",
        column_name="created_at",
        db_column_name="created_at",
        params={"default": None},
        old_params={"default": TimestamptzNow()},
        column_class=Timestamptz,
        old_column_class=Timestamptz,
        schema=None,
    )

    manager.alter_column(
        table_class_name="User",
        tablename="app_user",
        column_name="password_changed_at",
        db_column_name="password_changed_at",
        params={"default": None},
        old_params={"default": TimestamptzNow()},
        column_class=Timestamptz,
        old_column_class=Timestamptz,
        schema=None,
    )

    manager.alter_column(
        table_class_name="User",
        tablename="app_user",
        column_name="credentials_changed_at",
        db_column_name="credentials_changed_at",
        params={"default": None},
        old_params={"default": TimestamptzNow()},
        column_class=Timestamptz,
        old_column_class=Timestamptz,
        schema=None,
    )

    manager.alter_column(
        table_class_name="ApiToken",
        tablename="api_token",
        column_name="created_at",
        db_column_name="created_at",
        params={"default": None},
        old_params={"default": TimestamptzNow()},
        column_class=Timestamptz,
        old_column_class=Timestamptz,
        schema=None,
    )

    manager.alter_column(
        table_class_name="RoleGrantRequest",
        tablename="role_grant_request",
        column_name="requested_at",
        db_column_name="requested_at",
        params={"default": None},
        old_params={"default": TimestamptzNow()},
        column_class=Timestamptz,
        old_column_class=Timestamptz,
        schema=None,
    )

    manager.alter_column(
        table_class_name="AuditEvent",
        tablename="audit_event",
        column_name="occurred_at",
        db_column_name="occurred_at",
        params={"default": None},
        old_params={"default": TimestamptzNow()},
        column_class=Timestamptz,
        old_column_class=Timestamptz,
        schema=None,
    )

    return manager
