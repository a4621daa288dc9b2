"""The shared kernel's manifest: its tables (identity, audit, outbox), the outbox sweeper, the
demo staff and the health check. Its other routes (sign-in, users, audit) live in api/, the
composition root, which mounts them itself."""

from __future__ import annotations

from core.audit.jobs import JOBS as AUDIT_JOBS
from core.identity.seed import seed_users
from core.jobs import JOBS
from core.manifest import Manifest
from core.web.health import HealthController

MANIFEST = Manifest(
    name="core",
    jobs=(*JOBS, *AUDIT_JOBS),
    seed=seed_users,
    controllers=(HealthController,),
)
