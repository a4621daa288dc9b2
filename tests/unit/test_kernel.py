"""Small pieces of the kernel: the injected clock and PHI redaction in logs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.clock import FixedClock, get_clock, set_clock, utcnow
from core.logging import REDACTED, redact_phi


def test_fixed_clock_stores_utc_and_moves_only_when_told():
    local = datetime(2026, 3, 8, 1, 30, tzinfo=ZoneInfo("America/New_York"))
    clock = FixedClock(local)
    assert clock.now() == datetime(2026, 3, 8, 6, 30, tzinfo=UTC)
    assert clock.now().tzinfo is UTC
    clock.advance(timedelta(hours=1))
    assert clock.now() == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)


def test_fixed_clock_refuses_naive_time():
    with pytest.raises(ValueError, match="aware"):
        FixedClock(datetime(2026, 1, 1, 12, 0))  # noqa: DTZ001


def test_set_clock_swaps_the_process_clock_and_returns_the_old_one():
    frozen = FixedClock(datetime(2030, 1, 1, tzinfo=UTC))
    previous = set_clock(frozen)
    try:
        assert utcnow() == datetime(2030, 1, 1, tzinfo=UTC)
        assert get_clock() is frozen
    finally:
        set_clock(previous)
    assert utcnow() != datetime(2030, 1, 1, tzinfo=UTC)


def test_phi_and_secrets_are_redacted_by_key():
    event = {
        "event": "order.created",
        "order_id": 42,
        "patient_name": "Jane Fictional",
        "address": "1 Main St",
        "Email": "j@example.com",
        "password": "x",
        "api_token": "inf_x",
        "dob": "1970-01-01",
        "count": 3,
    }
    assert redact_phi(None, "info", event) == {
        "event": "order.created",
        "order_id": 42,
        "patient_name": REDACTED,
        "address": REDACTED,
        "Email": REDACTED,
        "password": REDACTED,
        "api_token": REDACTED,
        "dob": REDACTED,
        "count": 3,
    }
