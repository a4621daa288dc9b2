"""Injected time (architecture rule 7): BUDs, expiries and weekends are tested at their edges.

Code asks a Clock for the time instead of calling datetime.now(), and tests hand it a
FixedClock. Times are always aware and in UTC; local time is for printing and for cron
fields, which mean the pharmacy's wall clock (`local_zone()`, INFUSION_TIMEZONE).

Redis and arq keep the machine's real time: `wall_delay()` turns a due time on this clock into
a delay on the real one, so a deferred job under a FixedClock waits as long as it should.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock that only moves when told to."""

    current: datetime = field(default_factory=lambda: datetime(2026, 1, 5, 14, 0, tzinfo=UTC))

    def __post_init__(self) -> None:
        if self.current.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self.current = self.current.astimezone(UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


_clock: Clock = SystemClock()


def get_clock() -> Clock:
    return _clock


def set_clock(clock: Clock) -> Clock:
    """Swap the process clock (tests only); returns the previous one so it can be restored."""
    global _clock
    previous, _clock = _clock, clock
    return previous


def utcnow() -> datetime:
    return _clock.now()


def wall_delay(due: datetime) -> timedelta:
    """How long from now (on this clock) until `due`; never negative. Hand arq this delay,
    not `due` itself: arq measures it on the machine's clock, which tests do not replace."""
    return max(due - utcnow(), timedelta(0))


_local_zone: ZoneInfo | None = None


def local_zone() -> ZoneInfo:
    """The pharmacy's time zone (INFUSION_TIMEZONE), read once from the settings."""
    global _local_zone
    if _local_zone is None:
        from core.settings import load_settings

        _local_zone = load_settings().tz
    return _local_zone


def set_local_zone(zone: ZoneInfo | None) -> ZoneInfo | None:
    """Set the pharmacy's zone (tests; None reads the settings again); returns the previous."""
    global _local_zone
    previous, _local_zone = _local_zone, zone
    return previous
