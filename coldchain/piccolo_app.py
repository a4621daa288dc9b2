"""The Piccolo app of the `coldchain` domain (its tables arrive with the issues that need them)."""

from __future__ import annotations

from pathlib import Path

from piccolo.conf.apps import AppConfig

APP_CONFIG = AppConfig(
    app_name="coldchain",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=[],
    migration_dependencies=["core.piccolo_app"],
    commands=[],
)
