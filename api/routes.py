"""Every HTTP route handler of the product, in one list the app factory mounts."""

from __future__ import annotations

from typing import Any

from api.health import HealthController


def route_handlers() -> list[Any]:
    return [HealthController]
