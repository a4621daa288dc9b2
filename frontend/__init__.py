"""Server-rendered pages: Jinja2 templates, htmx from the npm registry, hand-written CSS.

What the app factory mounts (api/app.py, api/routes.py):
- `page_handlers()`: the pages' router, with HTML error handling (a signed-out visit to a staff
  page is redirected to /login instead of answering 401 JSON);
- `template_config(settings)`: the Jinja2 environment;
- `static_files_router()`: /static/... and /static/vendor/...; raises ConfigurationError when
  `npm ci` has not been run.

Where things live and how to add a page: docs/frontend.md.
"""

from __future__ import annotations

from typing import Any

from litestar import Router
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from core.settings import Settings
from frontend.assets import check_vendor_files, static_files_router
from frontend.security import PAGE_HEADERS

__all__ = ["check_vendor_files", "page_handlers", "static_files_router", "template_config"]


def page_handlers() -> list[Any]:
    """Every page, on one router that answers errors in HTML."""
    from frontend.errors import PAGE_EXCEPTION_HANDLERS
    from frontend.pages import PAGE_CONTROLLERS

    return [
        Router(
            path="/",
            route_handlers=PAGE_CONTROLLERS,
            exception_handlers=PAGE_EXCEPTION_HANDLERS,
            response_headers=PAGE_HEADERS,
            include_in_schema=False,
        )
    ]


def template_config(settings: Settings) -> TemplateConfig[JinjaTemplateEngine]:
    from frontend.templating import template_config as make_config

    return make_config(site_name=settings.site_name, environment=settings.environment)
