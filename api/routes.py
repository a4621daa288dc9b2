"""Every HTTP route handler of the product, in one list the app factory mounts: the kernel's
own routes (sign-in, users, audit), then each context's API controllers and pages from
its manifest (api/contexts.py)."""

from __future__ import annotations

from typing import Any

from api.audit import AuditController
from api.auth import AuthController
from api.contexts import manifests
from api.users import UsersController
from frontend import page_handlers


def route_handlers() -> list[Any]:
    contexts = manifests()
    return [
        AuthController,
        UsersController,
        AuditController,
        *(controller for m in contexts for controller in m.controllers),
        *page_handlers([page for m in contexts for page in m.pages]),
    ]
