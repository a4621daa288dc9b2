"""Every error leaves as `application/problem+json` (RFC 9457) with a sentence a person can act on.

Bad input is a 4xx naming what was wrong; only a bug is a 500, and its body says nothing of
the internals (the request id ties it to the log line).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from core.errors import (
    BAD_VALUE_ERRORS,
    OUTAGE_ERRORS,
    ExternalServiceError,
    InfusionError,
    RateLimitedError,
    ServiceUnavailableError,
    is_bad_argument,
    is_outage,
)
from core.logging import get_logger

log = get_logger(__name__)

PROBLEM_JSON = "application/problem+json"

TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    409: "Conflict",
    413: "Request too large",
    414: "URI too long",
    415: "Unsupported media type",
    422: "Unprocessable",
    429: "Too many requests",
    431: "Request headers too large",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
}


def problem(
    request: Request[Any, Any, Any], status: int, detail: str, *, code: str, **extra: Any
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": f"about:blank#{code}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.url.path,
        "request_id": request.scope.get("state", {}).get("request_id", ""),
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="infusion"'
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _validation_errors(exc: ValidationException) -> list[dict[str, Any]] | None:
    extra = exc.extra
    if isinstance(extra, list):
        return [e if isinstance(e, dict) else {"message": str(e)} for e in extra]
    return None


def handle_domain_error(request: Request[Any, Any, Any], exc: InfusionError) -> Response[Any]:
    if isinstance(exc, ExternalServiceError):
        return handle_external(request, exc)
    status = exc.status if 400 <= exc.status < 600 else 500
    if status >= 500:
        log.error("request.domain_error", code=exc.code)
        return problem(request, 500, "An internal error occurred.", code="internal")
    response = problem(request, status, exc.message, code=exc.code, **exc.detail)
    if isinstance(exc, RateLimitedError):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if isinstance(exc, ValidationException):
        return problem(
            request,
            400,
            _validation_message(exc),
            code="invalid_request",
            errors=_validation_errors(exc),
        )
    if isinstance(exc, NotAuthorizedException):
        return problem(request, 401, exc.detail or "Log in first.", code="not_authenticated")
    if isinstance(exc, PermissionDeniedException):
        return problem(
            request, 403, exc.detail or "Your role does not allow this.", code="forbidden"
        )
    if status == 503:
        # Litestar's own ServiceUnavailableException: the one 503 shape, like every outage.
        return unavailable(request, exc.detail or None)
    if status >= 500:
        log.error("request.http_error", status=status)
        return problem(
            request, status, TITLES.get(status, "Server error") + ".", code="server_error"
        )
    code = TITLES.get(status, "error").lower().replace(" ", "_")
    response = problem(request, status, exc.detail or TITLES.get(status, "Error"), code=code)
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


def _validation_message(exc: ValidationException) -> str:
    errors = _validation_errors(exc)
    if errors:
        parts = []
        for error in errors[:5]:
            key = error.get("key")
            message = error.get("message", "is invalid")
            parts.append(f"{key}: {message}" if key else str(message))
        return "Invalid request: " + "; ".join(parts)
    return exc.detail or "Invalid request."


# ---------------------------------------------------------------- outages and the outside world
# Only PostgreSQL or Redis not answering is `unavailable` (core.errors.is_outage); a printer's,
# a serial device's or a carrier's failure is its own ExternalServiceError; any other OSError
# is a bug (a 500).

DEFAULT_OUTAGE = ServiceUnavailableError().message


def unavailable(request: Request[Any, Any, Any], detail: str | None = None) -> Response[Any]:
    """The one 503 shape: code `unavailable`, a sentence, Retry-After."""
    response = problem(request, 503, detail or DEFAULT_OUTAGE, code="unavailable")
    response.headers["Retry-After"] = str(ServiceUnavailableError.retry_after)
    return response


def handle_outage(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.warning("request.outage", error_type=type(exc).__name__)
    detail = exc.message if isinstance(exc, ServiceUnavailableError) else None
    return unavailable(request, detail)


def handle_collision(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A serialisation failure or a deadlock that no retry absorbed (a route that does not use
    core.db.run_in_transaction): nobody's fault and nothing was written, so a 409 to try
    again, never a 500."""
    log.warning("request.collision", sqlstate=getattr(exc, "sqlstate", None))
    response = problem(
        request,
        409,
        "This change collided with others made at the same moment; nothing was saved. Try again.",
        code="conflict",
    )
    response.headers["Retry-After"] = "1"
    return response


def handle_os_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A socket error or a time-out: an outage when the database or Redis client raised it."""
    if is_outage(exc):
        return handle_outage(request, exc)
    return handle_unexpected(request, exc)


def handle_external(request: Request[Any, Any, Any], exc: ExternalServiceError) -> Response[Any]:
    cause = exc.__cause__
    log.warning(
        "request.external_failure",
        code=exc.code,
        cause_type=type(cause).__name__ if cause is not None else None,
    )
    status = exc.status if 500 <= exc.status < 600 else 502
    return problem(request, status, exc.message, code=exc.code, **exc.detail)


def handle_bad_value(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A value PostgreSQL refused: the caller's when it was a bound argument, else our bug."""
    if not is_bad_argument(exc):
        return handle_unexpected(request, exc)
    # The database's message quotes the value, which may be patient data: never echo or log it.
    log.warning("request.bad_value", error_type=type(exc).__name__)
    return problem(
        request,
        400,
        "A value in the request is out of range or contains characters that cannot be stored.",
        code="invalid_value",
    )


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("request.unhandled", error_type=type(exc).__name__)
    return problem(
        request, HTTP_500_INTERNAL_SERVER_ERROR, "An internal error occurred.", code="internal"
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    InfusionError: handle_domain_error,
    HTTPException: handle_http_exception,
    **dict.fromkeys(OUTAGE_ERRORS, handle_outage),
    OSError: handle_os_error,  # TimeoutError and ConnectionRefusedError included
    **dict.fromkeys(BAD_VALUE_ERRORS, handle_bad_value),
    asyncpg.exceptions.TransactionRollbackError: handle_collision,  # 40001, 40P01 (class 40)
    Exception: handle_unexpected,
}

__all__ = ["EXCEPTION_HANDLERS", "PROBLEM_JSON", "MediaType", "problem"]
