"""The Piccolo app of the shared kernel: identity, audit and the job outbox."""

from __future__ import annotations

from pathlib import Path

from piccolo.conf.apps import AppConfig

from core.audit.tables import AuditEvent
from core.identity.tables import ApiToken, User
from core.tables import JobClaim, OutboxJob

APP_CONFIG = AppConfig(
    app_name="core",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=[User, ApiToken, AuditEvent, OutboxJob, JobClaim],
    migration_dependencies=[],
    commands=[],
)
