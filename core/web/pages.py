"""The one way a page handler renders: `render(request, name, ...)`.

Page handlers live in their context (e.g. `fulfilment/catalogue/pages.py`) and in
`frontend/pages/`; their templates extend `base.html`, which expects the user and their menu.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import MediaType, Request
from litestar.response import Template

from core.web.navigation import nav_for

# Pages show people's data: never keep them in a shared or back-button cache, so a signed-out
# browser cannot show the previous user's page again.
NO_STORE = {"Cache-Control": "no-store"}


def current_user(request: Request[Any, Any, Any]) -> Any:
    """The signed-in staff member, or None (pages that are public have no user)."""
    return request.scope.get("user")


def render(
    request: Request[Any, Any, Any],
    template_name: str,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> Template:
    """Render a page with what every page's layout needs (the user and their menu)."""
    user = current_user(request)
    context.setdefault("user", user)
    context.setdefault("nav", nav_for(user, request.url.path, request.app.state.get("nav", ())))
    return Template(
        template_name=template_name,
        context=context,
        status_code=status_code,
        media_type=MediaType.HTML,
        headers={**NO_STORE, **(headers or {})},
    )
