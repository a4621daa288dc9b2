"""Errors with a stable code and an HTTP status, so the edge can map them without guessing.

An expected refusal (a conflict, a rule) is a 4xx with a sentence a person can act on; only a
bug is a 500.
"""

from __future__ import annotations

from typing import Any, ClassVar

import asyncpg
from asyncpg.exceptions import _base as asyncpg_base
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


class InfusionError(Exception):
    """Base of every error the product raises on purpose."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class ConfigurationError(InfusionError):
    """The environment or the data folder is not usable; the CLI exits 2 with the message."""

    code = "configuration"


class DomainError(InfusionError):
    """A rule of the domain refused the action (422 unless a subclass says otherwise)."""

    code = "domain_rule"
    status = 422


class NotFoundError(DomainError):
    code = "not_found"
    status = 404


class ConflictError(DomainError):
    code = "conflict"
    status = 409


class AuthenticationError(DomainError):
    code = "not_authenticated"
    status = 401


class PermissionDeniedError(DomainError):
    code = "forbidden"
    status = 403


class RateLimitedError(DomainError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: int, **detail: Any) -> None:
        super().__init__(message, **detail)
        self.retry_after = retry_after


class OutageError(InfusionError):
    """A server we depend on did not answer in time: 503 `unavailable` with Retry-After."""

    code = "unavailable"
    status = 503


class DatabaseUnavailableError(OutageError):
    """PostgreSQL refused, dropped or did not answer within core.db's timeouts (pool acquire,
    connect, command), so the request fails fast instead of waiting out the outage."""


# A server not answering (PostgreSQL or Redis down, a timeout), as opposed to a bug: the edge
# answers 503 and /health names the part.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OutageError,
    OSError,
    TimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
    asyncpg.PostgresConnectionError,
)

# A value PostgreSQL cannot store (a number past its column's range, a NUL character): the
# caller's input, so a 400. Both asyncpg's client-side check and SQLSTATE class 22.
BAD_VALUE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg_base.DataError,
    asyncpg.exceptions.DataError,
)
