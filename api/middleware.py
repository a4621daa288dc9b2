"""Request ids and access logs, as a plain ASGI middleware (cheap on every request)."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from core.logging import get_logger

log = get_logger("access")

_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Wrap the whole app (not a route): 404s and 405s carry a request id and are logged too."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        # Accept a caller's id (a load balancer's) only in a safe shape; it goes into logs.
        request_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await app(scope, receive, send_with_id)
            finally:
                # The path only, never the query string: tokens and search terms stay out of logs.
                log.info(
                    "request",
                    method=scope["method"],
                    path=_route_path(scope),
                    status=status,
                    ms=round((time.perf_counter() - started) * 1000, 1),
                )

    return middleware


def _route_path(scope: Scope) -> Any:
    # The route template (`/t/{token:str}`) rather than the path, so path parameters such as a
    # patient's tracking token never reach the log; unmatched paths are logged as they came.
    return scope.get("path_template") or scope.get("path", "")
