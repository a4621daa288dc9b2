"""The Piccolo tables and the migrations agree: a changed table without a migration fails here.

This is Piccolo's own auto-migration differ (what `piccolo migrations new APP --auto` runs),
applied to every app; it reads migration files and table classes only, no database.
"""

from __future__ import annotations

import importlib

import pytest
from piccolo.apps.migrations.commands.new import AutoMigrationManager
from piccolo.conf.apps import Finder

import piccolo_conf

APPS = [importlib.import_module(module).APP_CONFIG.app_name for module in piccolo_conf.APPS]


def test_every_context_has_its_own_app():
    assert APPS == [
        "core",
        "packout",
        "loggers",
        "printing",
        "catalogue",
        "orders",
        "compounding",
        "carriers",
        "shipments",
    ]


@pytest.mark.parametrize("app_name", APPS)
async def test_migrations_match_the_tables(app_name):
    app_config = Finder().get_app_config(app_name)
    statements = await AutoMigrationManager().get_alter_statements(app_config)
    pending = [s for alter in statements for s in alter.statements]
    assert pending == [], (
        f"{app_name}: tables differ from migrations; run "
        f"`uv run piccolo migrations new {app_name} --auto` and commit the file.\n"
        + "\n".join(pending)
    )


async def test_the_check_notices_a_table_without_a_migration():
    from piccolo.columns import Varchar
    from piccolo.conf.apps import AppConfig
    from piccolo.table import Table

    class Unmigrated(Table):
        label = Varchar()

    core = Finder().get_app_config("core")
    extended = AppConfig(
        app_name="core",
        migrations_folder_path=core.migrations_folder_path,
        table_classes=[*core.table_classes, Unmigrated],
    )
    statements = await AutoMigrationManager().get_alter_statements(extended)
    params = (
        "{'length': 255, 'default': '', 'null': False, 'primary_key': False, 'unique': False, "
        "'index': False, 'index_method': IndexMethod.btree, 'choices': None, "
        "'db_column_name': None, 'secret': False}"
    )
    assert [s for alter in statements for s in alter.statements] == [
        "manager.add_table(class_name='Unmigrated', tablename='unmigrated', schema=None, "
        "columns=None)",
        "manager.add_column(table_class_name='Unmigrated', tablename='unmigrated', "
        "column_name='label', db_column_name='label', column_class_name='Varchar', "
        f"column_class=Varchar, params={params}, schema=None)",
    ]
