"""Every HTTP route handler of the product, in one list the app factory mounts."""

from __future__ import annotations

from typing import Any

from api.audit import AuditController
from api.auth import AuthController
from api.health import HealthController
from api.users import UsersController
from frontend import page_handlers


def route_handlers() -> list[Any]:
    return [HealthController, AuthController, UsersController, AuditController, *page_handlers()]
