"""The Litestar app factory: the composition root of the HTTP side."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

import core
import frontend
from api.contexts import manifests
from api.middleware import request_id_middleware
from api.routes import route_handlers
from core import db, queue
from core.logging import configure_logging
from core.redis import make_redis
from core.settings import Settings
from core.web.authentication import auth_middleware
from core.web.errors import EXCEPTION_HANDLERS
from core.web.sessions import session_stores


def create_app(settings: Settings, *, manage_resources: bool = True) -> Litestar:
    """`manage_resources=False` when the caller already opened the pool and the queue."""
    if not settings.database_url or not settings.redis_url:
        raise ValueError(
            "create_app() needs database_url and redis_url (start_servers() resolves them)"
        )

    @asynccontextmanager
    async def resources(app: Litestar) -> AsyncIterator[None]:
        app.state.redis = make_redis(settings.redis_url or "")
        if manage_resources:
            await db.open_pool(settings.database_url or "", max_size=10)
            await queue.connect(settings.redis_url or "")
        try:
            yield
        finally:
            if manage_resources:
                await queue.disconnect()
                await db.close_pool()
            await app.state.redis.aclose()

    configure_logging(level=settings.log_level, fmt=settings.log_format)
    app = Litestar(
        # Static files are mounted here: they need no guard and no page error handling.
        route_handlers=[*route_handlers(), frontend.static_files_router()],
        template_config=frontend.template_config(
            settings, context_dirs=[m.templates for m in manifests() if m.templates is not None]
        ),
        lifespan=[resources],
        exception_handlers=EXCEPTION_HANDLERS,
        # Sessions (in Redis) and who is calling; guards on each route decide who may.
        middleware=auth_middleware(settings),
        stores=session_stores(settings),
        openapi_config=OpenAPIConfig(
            title="infusion",
            version=core.__version__,
            description="Home-infusion pharmacy logistics: orders, compounding, cold chain, "
            "dispatch.",
            path="/schema",
            render_plugins=[api_docs_ui()],
        ),
        state=_initial_state(settings),
        logging_config=None,
        debug=False,
    )
    # Litestar's middleware wraps route handlers only; wrapping its ASGI handler covers every
    # response, routed or not, inside its exception handling.
    app.asgi_handler = request_id_middleware(app.asgi_handler)
    return app


def _initial_state(settings: Settings) -> Any:
    from litestar.datastructures import State

    # The main menu: frontend's own entries, then each context's, in context order.
    nav = (*frontend.NAV, *(item for m in manifests() for item in m.nav))
    return State({"settings": settings, "nav": nav})


def api_docs_ui() -> SwaggerRenderPlugin:
    """Swagger UI at /schema, its files served from node_modules: never a CDN (see
    frontend/assets.py), so the documentation works offline and cannot change under us."""
    from frontend.assets import asset_url

    return SwaggerRenderPlugin(
        path="/",
        js_url=asset_url("vendor/swagger-ui-bundle.js"),
        css_url=asset_url("vendor/swagger-ui.css"),
        standalone_preset_js_url=asset_url("vendor/swagger-ui-standalone-preset.js"),
        favicon=f"<link rel='icon' type='image/svg+xml' href='{asset_url('img/favicon.svg')}'>",
    )
