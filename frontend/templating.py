"""The Jinja2 environment and the one way page handlers render: `render(request, name, ...)`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
from litestar import MediaType, Request
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template.config import TemplateConfig

import core
from frontend.assets import FRONTEND_DIR, asset_url
from frontend.navigation import nav_for

TEMPLATES_DIR = FRONTEND_DIR / "templates"

# Pages show people's data: never keep them in a shared or back-button cache, so a signed-out
# browser cannot show the previous user's page again.
NO_STORE = {"Cache-Control": "no-store"}

ROLE_LABELS = {
    "technician": "Technician",
    "packer": "Packer",
    "pharmacist": "Pharmacist",
    "admin": "Administrator",
}


def role_label(role: str) -> str:
    return ROLE_LABELS.get(role, role.replace("_", " ").capitalize())


def make_environment(*, site_name: str, environment: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        # A typo in a template fails the test that renders it instead of printing nothing.
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        site_name=site_name,
        environment=environment,
        asset_url=asset_url,
        version=core.__version__,
    )
    env.filters["role_label"] = role_label
    return env


def template_config(*, site_name: str, environment: str) -> TemplateConfig[JinjaTemplateEngine]:
    env = make_environment(site_name=site_name, environment=environment)
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(env))


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
    context.setdefault("nav", nav_for(user, request.url.path))
    return Template(
        template_name=template_name,
        context=context,
        status_code=status_code,
        media_type=MediaType.HTML,
        headers={**NO_STORE, **(headers or {})},
    )
