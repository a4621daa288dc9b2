"""Cron fields mean the pharmacy's wall clock (INFUSION_TIMEZONE), across DST changes.

arq matches cron fields (`hour=6, minute=0`) against an aware datetime in the worker's zone
and steps through candidates with wall-clock arithmetic (`arq/cron.py`: `next_cron`, called
from `Worker.run_cron` with `datetime.now(tz=worker.timezone)`). Python compares two
datetimes that share a tzinfo by their wall time, so on the night clocks fall back a
per-minute job in a DST zone stops for an hour, and a worker whose machine runs on UTC fires
"06:00" at 06:00 UTC. `LocalCronJob` keeps arq's field matching but computes each next run
as an instant in UTC (`next_local_run`), which arq then compares correctly whatever its own
zone.

The two DST nights, for `hour=`/`minute=` fields:
- spring forward: a wall time the clocks skip (02:30) runs once, shifted forward by the gap
  (03:30 daylight time), as Python's `fold=0` reads it;
- fall back: a job with a fixed hour (`hour=1, minute=30`) runs once, at the first 01:30;
  a job with no hour field (every minute, every quarter hour) runs in both passes of the
  repeated hour, so it keeps its pace in real time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from arq.cron import CronJob, next_cron

# Fields arq's next_cron understands; cron()'s other arguments (run_at_startup, unique, …)
# are not part of the schedule.
SCHEDULE_FIELDS = ("month", "day", "weekday", "hour", "minute", "second", "microsecond")
# Longer than any UTC offset change on record (two hours), so a scan this wide around a
# transition sees every wall time that can map to the next instant.
_SHIFT = timedelta(hours=3)


def schedule_of(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k in SCHEDULE_FIELDS}


def _instants(wall: datetime, zone: ZoneInfo, *, both_passes: bool) -> list[datetime]:
    """The instants (UTC) at which the local wall time `wall` (naive) happens."""
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return [first.astimezone(UTC)]
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
        return [first.astimezone(UTC)]  # skipped by the clocks: fold 0 is the shifted time
    instants = [first.astimezone(UTC), second.astimezone(UTC)]
    return instants if both_passes else instants[:1]


def _near_transition(zone: ZoneInfo, instant: datetime) -> bool:
    return (instant - _SHIFT).astimezone(zone).utcoffset() != (instant + _SHIFT).astimezone(
        zone
    ).utcoffset()


def next_local_run(after: datetime, fields: Mapping[str, Any], zone: ZoneInfo) -> datetime:
    """The first instant strictly after `after` (aware) whose wall time in `zone` matches the
    cron `fields` (arq's names and defaults: second=0, microsecond=123_456), in UTC."""
    if after.tzinfo is None:
        raise ValueError("next_local_run needs an aware datetime")
    schedule = {"second": 0, "microsecond": 123_456, **schedule_of(fields)}
    both_passes = schedule.get("hour") is None
    after = after.astimezone(UTC)
    wall = after.astimezone(zone).replace(tzinfo=None)
    # Away from a DST change wall time and real time move together and the first match is the
    # answer; near one, an earlier wall time can still be ahead in real time.
    cursor = wall - (_SHIFT if _near_transition(zone, after) else timedelta(seconds=1))
    best: datetime | None = None
    scan_until: datetime | None = None
    while True:
        candidate = next_cron(cursor, **schedule)
        if scan_until is not None and candidate > scan_until:
            return best  # type: ignore[return-value]
        for instant in _instants(candidate, zone, both_passes=both_passes):
            if instant > after and (best is None or instant < best):
                best = instant
        if best is not None and scan_until is None:
            if not _near_transition(zone, best):
                return best
            scan_until = candidate + _SHIFT
        cursor = candidate


@dataclass
class LocalCronJob(CronJob):
    """An arq cron entry whose fields mean the pharmacy's wall clock (see the module doc).

    `zone` None reads `core.clock.local_zone()` at the first computation, so jobs declared at
    import time follow the settings the worker starts with.
    """

    zone: ZoneInfo | None = None

    def calculate_next(self, prev_run: datetime) -> None:
        if self.zone is None:
            from core.clock import local_zone

            self.zone = local_zone()
        fields = {name: getattr(self, name) for name in SCHEDULE_FIELDS}
        self.next_run = next_local_run(prev_run, fields, self.zone)
