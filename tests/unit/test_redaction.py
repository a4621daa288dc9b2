"""Exception text that quotes stored values is redacted before it reaches a log or last_error."""

from __future__ import annotations

import logging
import sys

import pytest

from core.logging import RedactingFilter, redact_exception_text, redact_text


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (
            'invalid input syntax for type integer: "Jane Doe"',
            'invalid input syntax for type integer: "[redacted]"',
        ),
        (
            'invalid input value for enum status: "a "quoted" value"',
            'invalid input value for enum status: "[redacted]"',
        ),
        (
            "invalid input for query argument $1: 'Jane' (an integer is required (got type str))",
            "invalid input for query argument $1: [redacted]",
        ),
        (
            'duplicate key value violates unique constraint "app_user_email"\n'
            "DETAIL:  Key (email)=(jane@example.org) already exists.",
            'duplicate key value violates unique constraint "app_user_email"\n'
            "DETAIL:  Key (email)=([redacted]) already exists.",
        ),
        (
            'null value in column "mrn" of relation "patient" violates not-null constraint\n'
            "DETAIL:  Failing row contains (7, Jane, null).\nnext line",
            'null value in column "mrn" of relation "patient" violates not-null constraint\n'
            "DETAIL:  Failing row contains ([redacted]).\nnext line",
        ),
        # Our own messages and identifiers are left alone.
        ("ValueError: refused f", "ValueError: refused f"),
        ('relation "outbox_job" does not exist', 'relation "outbox_job" does not exist'),
    ],
)
def test_quoted_values_are_redacted(text, redacted):
    assert redact_text(text) == redacted


def test_the_standard_library_filter_redacts_the_message_and_the_traceback():
    try:
        raise ValueError('invalid input syntax for type integer: "Jane Doe"')
    except ValueError:
        record = logging.LogRecord(
            "arq.worker",
            logging.ERROR,
            __file__,
            1,
            "failed, %s",
            ("Key (a)=(Jane) x",),
            sys.exc_info(),
        )
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == "failed, Key (a)=([redacted]) x"
    assert record.exc_text is not None
    assert "Jane" not in record.exc_text
    assert 'ValueError: invalid input syntax for type integer: "[redacted]"' in record.exc_text


def test_the_structlog_processor_redacts_rendered_tracebacks():
    event = {"event": "job.failed", "exception": 'Traceback…\nDataError: x: "Jane"', "row": 3}
    assert redact_exception_text(None, "error", event) == {
        "event": "job.failed",
        "exception": 'Traceback…\nDataError: x: "[redacted]"',
        "row": 3,
    }
