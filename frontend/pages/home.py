"""`GET /`: the signed-in staff member's start page, with a live system status panel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.response import Template

from core.clock import utcnow
from core.web.guards import requires
from core.web.health import check_health
from core.web.pages import render

STATUS_FRAGMENT = "/fragments/status"


@dataclass(frozen=True)
class StatusPart:
    key: str
    label: str
    ok: bool
    ms: float
    error: str | None


async def status_context(state: State) -> dict[str, Any]:
    """What fragments/status.html shows: the same checks as GET /health, nothing duplicated."""
    health = await check_health(state)
    parts = [
        StatusPart(key=key, label=label, ok=part.ok, ms=part.ms, error=part.error)
        for key, label, part in (
            ("database", "Database", health.database),
            ("redis", "Redis", health.redis),
        )
    ]
    checked_at: datetime = utcnow().astimezone(state.settings.tz)
    return {"status_parts": parts, "status_checked_at": checked_at}


class HomePages(Controller):
    path = "/"

    # Any signed-in staff member, whatever their role.
    @get("/", operation_id="getHomePage", include_in_schema=False, guards=[requires()])
    async def home(self, request: Request[Any, Any, Any], state: State) -> Template:
        return render(request, "pages/home.html", **await status_context(state))

    @get(
        STATUS_FRAGMENT,
        operation_id="getStatusFragment",
        include_in_schema=False,
        guards=[requires()],
        # Polled every 10 s: must not keep the session alive (see core.web.sessions.is_passive).
        opt={"passive": True},
    )
    async def status_fragment(self, request: Request[Any, Any, Any], state: State) -> Template:
        return render(request, "fragments/status.html", **await status_context(state))
