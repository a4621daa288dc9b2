from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.base import OnDelete
from piccolo.columns.base import OnUpdate
from piccolo.columns.column_types import ForeignKey
from piccolo.columns.indexes import IndexMethod


ID = "2026-12-02T09:00:00:000000"
VERSION = "1.38.0"
PARENT = "2026-12-01T21:20:01:000000"  # the migration before this one
DESCRIPTION = (
    "Account provenance for the two-person rule: created_by and password_set_by "
    "(NULL for existing accounts: unknown, treated like the shell)"
)


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="core", description=DESCRIPTION
    )

    for column_name in ("created_by", "password_set_by"):
        manager.add_column(
            table_class_name="User",
            tablename="app_user",
            column_name=column_name,
            db_column_name=column_name,
            column_class_name="ForeignKey",
            column_class=ForeignKey,
            params={
                "references": "self",
                "on_delete": OnDelete.restrict,
                "on_update": OnUpdate.cascade,
                "target_column": None,
                "null": True,
                "primary_key": False,
                "unique": False,
                "index": False,
                "index_method": IndexMethod.btree,
                "choices": None,
                "db_column_name": None,
                "secret": False,
            },
            schema=None,
        )

    return manager
