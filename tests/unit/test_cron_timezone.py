"""Cron fields mean the pharmacy's wall clock, on ordinary days and on both DST nights."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from arq.cron import cron

from core.cron import LocalCronJob, next_local_run

NY = ZoneInfo("America/New_York")
MS = 123_456  # arq's default microsecond, kept so runs avoid the top of the second


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def runs(after: datetime, fields: dict, count: int, zone: ZoneInfo = NY) -> list[datetime]:
    out = []
    for _ in range(count):
        after = next_local_run(after, fields, zone)
        out.append(after)
    return out


def test_a_daily_entry_fires_at_local_time_in_winter_and_summer():
    # 06:00 in New York is 11:00 UTC in January and 10:00 UTC in July.
    assert next_local_run(utc(2026, 1, 5, 0), {"hour": 6, "minute": 0}, NY) == utc(
        2026, 1, 5, 11, 0, 0, MS
    )
    assert next_local_run(utc(2026, 7, 5, 0), {"hour": 6, "minute": 0}, NY) == utc(
        2026, 7, 5, 10, 0, 0, MS
    )
    # Strictly after: asking at the run itself gives the next day.
    at = utc(2026, 1, 5, 11, 0, 0, MS)
    assert next_local_run(at, {"hour": 6, "minute": 0}, NY) == utc(2026, 1, 6, 11, 0, 0, MS)


def test_a_daily_entry_keeps_local_time_across_spring_forward_and_fall_back():
    # 2026-03-08 clocks go 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
    fields = {"hour": 6, "minute": 0}
    assert runs(utc(2026, 3, 7, 12), fields, 2) == [
        utc(2026, 3, 8, 10, 0, 0, MS),  # 06:00 EDT
        utc(2026, 3, 9, 10, 0, 0, MS),
    ]
    assert runs(utc(2026, 10, 31, 12), fields, 2) == [
        utc(2026, 11, 1, 11, 0, 0, MS),  # 06:00 EST
        utc(2026, 11, 2, 11, 0, 0, MS),
    ]


def test_a_wall_time_the_clocks_skip_runs_once_shifted_forward():
    fields = {"hour": 2, "minute": 30}
    assert runs(utc(2026, 3, 7, 12), fields, 3) == [
        utc(2026, 3, 8, 7, 30, 0, MS),  # 03:30 EDT: 02:30 does not exist that night
        utc(2026, 3, 9, 6, 30, 0, MS),  # 02:30 EDT
        utc(2026, 3, 10, 6, 30, 0, MS),
    ]


def test_a_fixed_hour_in_the_repeated_hour_runs_once():
    fields = {"hour": 1, "minute": 30}
    assert runs(utc(2026, 10, 31, 12), fields, 2) == [
        utc(2026, 11, 1, 5, 30, 0, MS),  # the first 01:30 (EDT); not again at 01:30 EST
        utc(2026, 11, 2, 6, 30, 0, MS),  # 01:30 EST
    ]


def test_an_every_minute_entry_keeps_its_pace_in_real_time_when_clocks_fall_back():
    # arq alone would wait from 01:59 EDT for wall time 02:00, an hour of no runs.
    start = utc(2026, 11, 1, 5, 58, 30)  # 01:58:30 EDT
    got = runs(start, {"second": 0}, 4)
    assert got == [
        utc(2026, 11, 1, 5, 59, 0, MS),  # 01:59 EDT
        utc(2026, 11, 1, 6, 0, 0, MS),  # 01:00 EST, the repeated hour
        utc(2026, 11, 1, 6, 1, 0, MS),
        utc(2026, 11, 1, 6, 2, 0, MS),
    ]


def test_an_every_minute_entry_has_no_gap_and_no_repeat_when_clocks_spring_forward():
    start = utc(2026, 3, 8, 6, 58, 30)  # 01:58:30 EST
    got = runs(start, {"second": 0}, 4)
    assert got == [
        utc(2026, 3, 8, 6, 59, 0, MS),  # 01:59 EST
        utc(2026, 3, 8, 7, 0, 0, MS),  # 03:00 EDT
        utc(2026, 3, 8, 7, 1, 0, MS),
        utc(2026, 3, 8, 7, 2, 0, MS),
    ]


def test_weekday_fields_are_local_days():
    # 21:00 Friday in New York is already Saturday in UTC.
    fields = {"weekday": "fri", "hour": 21, "minute": 0}
    assert next_local_run(utc(2026, 1, 5, 0), fields, NY) == utc(2026, 1, 10, 2, 0, 0, MS)


def test_the_arq_entry_computes_next_runs_in_the_pharmacy_zone_whatever_the_worker_zone():
    async def body(ctx):  # pragma: no cover - never run
        return None

    base = cron(body, name="tests.cron", hour=6, minute=0)
    entry = LocalCronJob(**{name: getattr(base, name) for name in base.__dataclass_fields__})
    entry.zone = NY
    # arq hands it "now" in the worker's zone (here Tokyo); the answer is an instant.
    entry.calculate_next(datetime(2026, 1, 5, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo")))
    assert entry.next_run == utc(2026, 1, 5, 11, 0, 0, MS)


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="aware"):
        next_local_run(datetime(2026, 1, 5), {"hour": 1}, NY)  # noqa: DTZ001
