"""The Piccolo app of coldchain.loggers: its own tables and its own migration chain."""

from __future__ import annotations

from pathlib import Path

from piccolo.conf.apps import AppConfig

from coldchain.loggers.tables import TABLES

APP_CONFIG = AppConfig(
    app_name="loggers",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=list(TABLES),
    # The apps whose tables this one's foreign keys may point at (the dependency direction).
    migration_dependencies=["core.piccolo_app"],
    commands=[],
)
