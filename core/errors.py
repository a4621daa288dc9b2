"""Errors with a stable code and an HTTP status, so the edge can map them without guessing.

An expected refusal (a conflict, a rule) is a 4xx with a sentence a person can act on; only a
bug is a 500.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
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


class ServiceUnavailableError(InfusionError):
    """PostgreSQL or Redis is not answering: the edge answers 503 `unavailable` with
    Retry-After, and /health names the part. A layer that puts its own limit on the database
    or Redis (a pool or command time-out) raises this, or a subclass, rather than a bare
    TimeoutError, which anything may raise."""

    code = "unavailable"
    status = 503
    retry_after: ClassVar[int] = 5

    def __init__(
        self,
        message: str = "The database or Redis is not answering; try again in a moment.",
        **detail: Any,
    ) -> None:
        super().__init__(message, **detail)


class DatabaseUnavailableError(ServiceUnavailableError):
    """PostgreSQL refused, dropped or did not answer within core.db's limits (pool acquire,
    connect, each command), so the request fails fast instead of waiting out the outage."""


class ExternalServiceError(InfusionError):
    """Something outside the product failed or did not answer: a carrier's API, a label
    printer, a serial device. Not an outage of ours, so never the `unavailable` 503: a 502
    with the subclass's own code and a sentence naming the device or service, e.g.

        class PrinterUnavailableError(ExternalServiceError):
            code = "printer_unavailable"

    An adapter turns its transport errors into one with `translate_outside_errors`."""

    code = "external_unavailable"
    status = 502


@contextmanager
def translate_outside_errors(
    error: type[ExternalServiceError],
    message: str,
    *,
    errors: tuple[type[BaseException], ...] = (OSError,),
) -> Iterator[None]:
    """Inside an adapter: a socket error or a time-out (TimeoutError is an OSError), plus
    any `errors` of the device's own library (a serial exception), becomes `error(message)`.
    The cause stays chained for the log; the message must not quote the device's answer."""
    try:
        yield
    except errors as exc:
        raise error(message) from exc


# ---------------------------------------------------------------- what counts as an outage
# Only the database and Redis not answering is an outage (503 `unavailable`). The types below
# come only from their clients, so they are one wherever they are raised.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    ServiceUnavailableError,
    RedisConnectionError,
    RedisTimeoutError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, and a connection lost mid-query
    asyncpg.exceptions.CannotConnectNowError,  # starting up or shutting down
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)

# OSError (ConnectionRefusedError, TimeoutError, ...) is raised by any socket: asyncpg raises
# it bare when PostgreSQL refuses a connection, but so does a printer's or a carrier's socket.
# It is an outage only when raised inside the database or Redis client (its traceback passes
# through their code); anywhere else it is a bug, since adapters translate theirs into an
# ExternalServiceError.
CLIENT_PACKAGES = frozenset({"asyncpg", "redis", "arq"})


def raised_inside_clients(exc: BaseException) -> bool:
    """Whether `exc` was raised in the code of the database or Redis client."""
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        module = str(frame.f_globals.get("__name__", ""))
        if module.partition(".")[0] in CLIENT_PACKAGES:
            return True
    return False


def is_outage(exc: BaseException) -> bool:
    """PostgreSQL or Redis not answering, as opposed to a bug or an outside device."""
    if isinstance(exc, OUTAGE_ERRORS):
        return True
    return isinstance(exc, OSError) and raised_inside_clients(exc)


# ---------------------------------------------------------------- a value the database refused
# SQLSTATE class 22 (data exception) and asyncpg's own argument check. Values reach PostgreSQL
# only as bound query arguments, so the rule is: refused while encoding or binding an argument
# = the caller's value, a 400 (a NUL character, a number past its column's range); raised
# while computing the query (a division by zero, a bad cast of a stored value) = our bug, a
# logged 500, never a 400 that blames the caller.
BAD_VALUE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg_base.DataError,
    asyncpg.exceptions.DataError,
)
# PostgreSQL's error context while binding: 'unnamed portal parameter $1' or
# 'portal "p" parameter $1 = ...'.
_BIND_CONTEXT = re.compile(r"\bparameter \$\d+")


def is_bad_argument(exc: BaseException) -> bool:
    """Whether a class-22 error was about a bound argument (the caller's value)."""
    if isinstance(exc, asyncpg_base.DataError):
        return True  # asyncpg's client-side check of an argument's type
    if not isinstance(exc, asyncpg.exceptions.DataError):
        return False
    fields = exc.as_dict()
    if "severity" not in fields:
        # Made by asyncpg itself while encoding an argument ('invalid input for query
        # argument $1'): the server never saw the query.
        return True
    return bool(_BIND_CONTEXT.search(fields.get("context") or ""))
