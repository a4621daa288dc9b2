"""Server-rendered pages: Jinja2 templates, htmx from the npm registry, hand-written CSS.

What the app factory mounts (api/app.py, api/routes.py):
- `page_handlers(context_pages)`: the pages' router, frontend's own pages (sign-in, home) and
  every context's, with HTML error handling (a signed-out visit to a staff page is redirected
  to /login instead of answering 401 JSON);
- `template_config(settings, context_dirs)`: the Jinja2 environment;
- `NAV`: frontend's own main-menu entries (contexts add theirs in their manifests);
- `static_files_router()`: /static/... and /static/vendor/...; raises ConfigurationError when
  `npm ci` has not been run.

Where things live and how to add a page: docs/frontend.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from litestar import Router
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from core.settings import Settings
from core.web.navigation import NavItem
from frontend.assets import check_vendor_files, static_files_router

__all__ = ["NAV", "check_vendor_files", "page_handlers", "static_files_router", "template_config"]

NAV: tuple[NavItem, ...] = (NavItem(label="Home", path="/", testid="nav-home"),)


def page_handlers(context_pages: Sequence[Any] = ()) -> list[Any]:
    """Every page, on one router that answers errors in HTML."""
    from frontend.errors import PAGE_EXCEPTION_HANDLERS
    from frontend.pages import PAGE_CONTROLLERS

    return [
        Router(
            path="/",
            route_handlers=[*PAGE_CONTROLLERS, *context_pages],
            exception_handlers=PAGE_EXCEPTION_HANDLERS,
            # The CSP and friends are added to every HTML answer by api.middleware.
            include_in_schema=False,
        )
    ]


def template_config(
    settings: Settings, *, context_dirs: Sequence[Path] = ()
) -> TemplateConfig[JinjaTemplateEngine]:
    from frontend.templating import template_config as make_config

    return make_config(
        site_name=settings.site_name, environment=settings.environment, context_dirs=context_dirs
    )
