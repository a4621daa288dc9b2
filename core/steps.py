"""Jobs that talk to the outside world commit in steps (architecture rules 2 and 4).

A carrier, a serial port or a printer can take seconds and can fail halfway, so such a job
never holds a transaction, a row lock or a pooled connection while it waits on them:

    @job("printing.print_label", steps=True)
    async def print_label(label_id: int) -> None:
        async with claim(f"print:label:{label_id}") as step:       # 1. claim, committed
            if step.recorded:
                return                                  # an earlier run finished the work
            receipt = None if step.first else await printer.find(step.key)  # reconcile
            if receipt is None:
                receipt = await printer.send(zpl, job_name=step.key)  # 2. outside, no transaction
            async with step.record({"receipt": receipt.id}):        # 3. record, new transaction
                await mark_printed(label_id, receipt.id)            #    our rows, same COMMIT

The claim row is committed before the outside call, so it survives a crash (a killed worker,
a lost connection) after the call: the next run finds `first` false and must ask the outside
world what happened, by the key it sent there (Shippo's metadata, a print job's name), instead
of calling again. Jobs with no outside call keep the simple form: one transaction.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from core import db
from core.clock import utcnow
from core.errors import ConflictError
from core.logging import get_logger

log = get_logger(__name__)


class StepAlreadyRecorded(ConflictError):
    """Another run recorded this claim first; this run's record rolled back."""


@dataclass
class Step:
    """A committed claim, as this run found it."""

    key: str
    # True for the run that created the claim: no earlier run can have called outside.
    first: bool
    # True when an earlier run already recorded the result (in `result`).
    recorded: bool
    result: dict[str, Any] | None
    _recorded_now: bool = field(default=False, repr=False)

    @asynccontextmanager
    async def record(self, result: Mapping[str, Any]) -> AsyncIterator[None]:
        """Step 3: one new transaction that writes our rows (inside the block) and marks the
        claim recorded with `result` (ids, not rows). Refused when already recorded."""
        _no_open_transaction("record()")
        async with db.transaction():
            rows = await db.fetch(
                "SELECT recorded_at FROM job_claim WHERE key = {} FOR UPDATE", self.key
            )
            if not rows:
                raise RuntimeError(f"step {self.key!r} has no claim")
            if rows[0]["recorded_at"] is not None:
                raise StepAlreadyRecorded(f"Step {self.key} was already recorded by another run.")
            yield
            await db.fetch(
                "UPDATE job_claim SET recorded_at = {}, result = {}::jsonb WHERE key = {}",
                utcnow(),
                json.dumps(dict(result)),
                self.key,
            )
        self._recorded_now = True
        self.recorded = True
        self.result = dict(result)


@asynccontextmanager
async def claim(key: str) -> AsyncIterator[Step]:
    """Step 1: claim `key` in a transaction of its own, committed before the block runs.

    Leaving the block without recording (and without an exception) is a bug in the job and
    raises: the claim stays, so the next run reconciles.
    """
    from core.queue import current_job

    _no_open_transaction("claim()")
    if not key or len(key) > 255:
        raise ValueError("a step key is 1 to 255 characters")
    async with db.transaction():
        [row] = await db.fetch(
            "INSERT INTO job_claim (key, job, claimed_at, claims) VALUES ({}, {}, {}, 1)"
            " ON CONFLICT (key) DO UPDATE SET claims = job_claim.claims + 1"
            " RETURNING claims, recorded_at IS NOT NULL AS recorded, result::text AS result",
            key,
            current_job() or "",
            utcnow(),
        )
    step = Step(
        key=key,
        first=row["claims"] == 1,
        recorded=row["recorded"],
        result=json.loads(row["result"]) if row["result"] else None,
    )
    if not step.first and not step.recorded:
        log.warning("step.reconcile", key=key, claims=row["claims"])
    already = step.recorded
    yield step
    if not already and not step._recorded_now:
        raise RuntimeError(f"step {key!r} was claimed but its result was not recorded")


def _no_open_transaction(what: str) -> None:
    if db.in_transaction():
        raise RuntimeError(
            f"{what} runs outside any transaction: a step job holds none across the outside"
            " call (declare it @job(..., steps=True))"
        )
