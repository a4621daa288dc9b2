"""The Litestar app factory: the composition root of the HTTP side."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.openapi import OpenAPIConfig

import core
import frontend
from api.contexts import manifests
from api.docs_ui import api_docs_ui
from api.middleware import (
    body_timeout_middleware,
    head_as_get_middleware,
    request_id_middleware,
    security_headers_middleware,
)
from api.routes import route_handlers
from api.server import BODY_IDLE_TIMEOUT, BODY_TOTAL_TIMEOUT
from core import db, queue
from core.logging import configure_logging
from core.redis import make_redis
from core.settings import Settings
from core.web.authentication import auth_middleware
from core.web.errors import EXCEPTION_HANDLERS
from core.web.openapi import contract_plugins
from core.web.requests import InfusionRequest
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
        # A JSON body that is not UTF-8 or is nested too deeply is a 400, not a 500.
        request_class=InfusionRequest,
        # What every route documents, accepts and answers, derived from the route
        # (core.web.openapi): a route added later needs nothing of its own.
        plugins=contract_plugins(),
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
    # response, routed or not (404s, 405s, error pages, /schema). Outermost first: the request
    # id and access log, HEAD as GET, then the headers every response gets; the body deadline
    # raises inside Litestar's exception handling, so its 408 is an ordinary error answer.
    handler = body_timeout_middleware(
        app.asgi_handler, idle=BODY_IDLE_TIMEOUT, total=BODY_TOTAL_TIMEOUT
    )
    handler = security_headers_middleware(handler, settings)
    handler = head_as_get_middleware(handler)
    app.asgi_handler = request_id_middleware(handler)
    return app


def _initial_state(settings: Settings) -> Any:
    from litestar.datastructures import State

    # The main menu: frontend's own entries, then each context's, in context order.
    nav = (*frontend.NAV, *(item for m in manifests() for item in m.nav))
    return State({"settings": settings, "nav": nav})
