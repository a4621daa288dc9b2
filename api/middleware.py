"""Plain ASGI middleware around the whole app (cheap on every request): request ids and access
logs, HEAD, a deadline for request bodies, and the security headers of every response."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import structlog
from litestar.exceptions import ClientException
from litestar.status_codes import HTTP_408_REQUEST_TIMEOUT
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from core.logging import get_logger
from core.settings import Settings
from core.web.security import HSTS, PAGE_HEADERS

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


def head_as_get_middleware(app: ASGIApp) -> ASGIApp:
    """HEAD works wherever GET does: routed as GET, answered with GET's headers and no body.

    Litestar answers 405 to HEAD on a GET route; monitors, link checkers and `curl -I` send
    HEAD. The method is put back before the answer starts, so logs and the server see HEAD.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await app(scope, receive, send)
            return
        # In place: Litestar records the route template in this scope, which the access log
        # reads (a copy would log the raw path, tokens included).
        scope["method"] = "GET"

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.start":
                scope["method"] = "HEAD"
            elif message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            await app(scope, receive, send_without_body)
        finally:
            scope["method"] = "HEAD"

    return middleware


def body_timeout_middleware(app: ASGIApp, *, idle: float, total: float) -> ASGIApp:
    """A request body that stops arriving for `idle` seconds, or is not all there `total`
    seconds after the app first asked for it, ends in 408 (api/server.py says why).

    Only the time the app spends waiting for the client counts: a handler that is slow to read
    is not the client's fault. The total stops a body trickled in a byte at a time, each just
    within `idle`.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        body_done = False
        deadline: float | None = None

        async def receive_in_time() -> Message:
            nonlocal body_done, deadline
            if body_done:
                # After the body, receive() only waits for a disconnect (a streamed answer
                # listens for one): no deadline there.
                return await receive()
            now = time.monotonic()
            if deadline is None:
                deadline = now + total
            wait = min(idle, deadline - now)
            try:
                message = await asyncio.wait_for(receive(), max(wait, 0))
            except TimeoutError:
                detail = (
                    f"The request body stopped arriving for {idle:g} seconds."
                    if wait == idle
                    else f"The request body did not arrive within {total:g} seconds."
                )
                log.warning("request.body_timeout", idle=wait == idle)
                raise ClientException(
                    detail, status_code=HTTP_408_REQUEST_TIMEOUT, headers={"Connection": "close"}
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        await app(scope, receive_in_time, send)

    return middleware


def security_headers_middleware(app: ASGIApp, settings: Settings) -> ASGIApp:
    """The headers every response needs, added in one place so none can be forgotten:

    - on every HTML page (error pages and the API documentation included): the CSP,
      `X-Frame-Options`, `Referrer-Policy` (core.web.security.PAGE_HEADERS);
    - on every response: `X-Content-Type-Options: nosniff`, and `Strict-Transport-Security`
      when the public URL is https (browsers then never try plain http again);
    - `Cache-Control: no-store` unless the route set a cache policy itself (static files do),
      and always on a route with `opt={"secret": True}` (a new API token): answers hold
      patients' data or secrets and must not be kept by a shared cache or the back button.
    """
    always = {b"x-content-type-options": b"nosniff"}
    if settings.public_url.startswith("https://"):
        always[b"strict-transport-security"] = HSTS.encode()
    page = {name.lower().encode(): value.encode() for name, value in PAGE_HEADERS.items()}

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                content_type = next(
                    (value for name, value in headers if name.lower() == b"content-type"), b""
                )
                wanted = dict(always)
                if content_type.lower().startswith(b"text/html"):
                    wanted.update(page)
                route = scope.get("route_handler")
                if route is not None and route.opt.get("secret"):
                    headers = [(n, v) for n, v in headers if n.lower() != b"cache-control"]
                    present.discard(b"cache-control")
                wanted.setdefault(b"cache-control", b"no-store")
                headers += [(name, value) for name, value in wanted.items() if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware
