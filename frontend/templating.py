"""The Jinja2 environment: frontend's own templates (the layout, sign-in, home) plus each
context's template folder, named in its manifest. Pages render with core.web.pages.render."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import jinja2
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

import core
from frontend.assets import FRONTEND_DIR, asset_url

TEMPLATES_DIR = FRONTEND_DIR / "templates"

ROLE_LABELS = {
    "technician": "Technician",
    "packer": "Packer",
    "pharmacist": "Pharmacist",
    "admin": "Administrator",
}


def role_label(role: str) -> str:
    return ROLE_LABELS.get(role, role.replace("_", " ").capitalize())


def make_environment(
    *, site_name: str, environment: str, context_dirs: Sequence[Path] = ()
) -> jinja2.Environment:
    """`context_dirs`: each context's template folder. Its templates sit in a sub-folder named
    for the context (`catalogue/product.html`), so two contexts cannot shadow each other."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([TEMPLATES_DIR, *context_dirs]),
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


def template_config(
    *, site_name: str, environment: str, context_dirs: Sequence[Path] = ()
) -> TemplateConfig[JinjaTemplateEngine]:
    env = make_environment(site_name=site_name, environment=environment, context_dirs=context_dirs)
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(env))
