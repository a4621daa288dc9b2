"""Errors on pages answer in HTML; the JSON API under /api keeps its problem+json (api/errors.py).

These handlers are mounted on the pages' router only. The one that matters most: a signed-out
visit to a staff page is sent to the login form (303) with a `next` that brings the person back,
where the API would answer 401.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.response import Redirect
from litestar.status_codes import HTTP_303_SEE_OTHER

from core.errors import InfusionError, RateLimitedError
from core.logging import get_logger
from core.web.pages import render
from core.web.security import login_url, request_target

log = get_logger(__name__)

TITLES = {
    400: "The request could not be read",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed here",
    408: "The request took too long",
    409: "Conflict",
    413: "Too much was sent",
    422: "This could not be done",
    429: "Too many attempts",
    500: "Something went wrong",
}


def _is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def _return_to(request: Request[Any, Any, Any]) -> str | None:
    """Where to come back to after signing in again."""
    if _is_htmx(request):
        # A fragment's own URL is no page: go back to the page that asked for it.
        try:
            parts = urlsplit(request.headers.get("hx-current-url", ""))
        except ValueError:  # unparsable (`http://[::1`): no page to return to
            return None
        return parts.path + (f"?{parts.query}" if parts.query else "") if parts.path else None
    if request.method in ("GET", "HEAD"):
        return request_target(request)
    # A form posted after the session ended: its page, from the Referer on this site.
    try:
        referer = urlsplit(request.headers.get("referer", ""))
    except ValueError:
        return None
    if referer.netloc and referer.netloc == request.headers.get("host"):
        return referer.path
    return None


def to_login(request: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[Any]:
    target = login_url(_return_to(request))
    if _is_htmx(request):
        # htmx would swap a followed redirect (the whole login page) into a panel; HX-Redirect
        # makes it load the login page as a page instead.
        return Response(
            "", status_code=401, headers={"HX-Redirect": target, "Cache-Control": "no-store"}
        )
    return Redirect(target, status_code=HTTP_303_SEE_OTHER, headers={"Cache-Control": "no-store"})


def _page(request: Request[Any, Any, Any], status: int, message: str) -> Any:
    return render(
        request,
        "pages/error.html",
        status_code=status,
        title=TITLES.get(status, "Something went wrong"),
        message=message,
        status=status,
        request_id=request.scope.get("state", {}).get("request_id", ""),
    )


def forbidden(request: Request[Any, Any, Any], exc: PermissionDeniedException) -> Any:
    return _page(request, 403, exc.detail or "Your role does not allow this page.")


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Any:
    status = exc.status_code
    if isinstance(exc, ValidationException):
        return _page(request, 400, "Some of what was sent could not be read. Please try again.")
    if status >= 500:
        log.error("page.http_error", status=status)
        return _page(request, status, "Please try again; if it keeps happening, tell support.")
    response = _page(request, status, exc.detail or TITLES.get(status, "Error"))
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


def domain_error(request: Request[Any, Any, Any], exc: InfusionError) -> Any:
    if exc.status >= 500 or exc.status < 400:
        log.error("page.domain_error", code=exc.code)
        return _page(request, 500, "Please try again; if it keeps happening, tell support.")
    response = _page(request, exc.status, exc.message)
    if isinstance(exc, RateLimitedError):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def unexpected(request: Request[Any, Any, Any], exc: Exception) -> Any:
    log.exception("page.unhandled", error_type=type(exc).__name__)
    return _page(request, 500, "Please try again; if it keeps happening, tell support.")


PAGE_EXCEPTION_HANDLERS: dict[Any, Any] = {
    NotAuthorizedException: to_login,
    PermissionDeniedException: forbidden,
    HTTPException: http_error,
    InfusionError: domain_error,
    Exception: unexpected,
}
