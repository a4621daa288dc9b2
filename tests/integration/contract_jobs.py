"""Jobs for the job-contract tests, importable by the test and by a worker subprocess.

The "carrier" of the step job is a file under STEP_DIR: each purchase appends a line, so the
test counts outside calls exactly, even across a worker killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from core import db
from core.queue import job
from core.steps import claim

# Flipped by a test that runs its worker in-process.
SLOW = {"on": True}


@job("tests.contract.sleeps", timeout=1, max_attempts=2)
async def sleeps(key: str) -> None:
    if SLOW["on"]:
        await asyncio.sleep(10)
    await db.fetch("INSERT INTO test_job_run (job_key) VALUES ({})", key)


@job("tests.contract.slow_record", timeout=10)
async def slow_record(key: str) -> None:
    await asyncio.sleep(0.5)
    await db.fetch("INSERT INTO test_job_run (job_key) VALUES ({})", key)


@job("tests.contract.unserved", max_attempts=2)
async def unserved(key: str) -> None:  # no worker in these tests serves it
    raise AssertionError("never runs")


@job("tests.contract.bad_value", max_attempts=1)
async def bad_value(row_id: int) -> None:
    # PostgreSQL quotes the stored value it refuses: invalid input syntax for type integer: "…"
    await db.fetch("SELECT job_key::int FROM test_job_run WHERE id = {}", row_id)


def _carrier() -> Path:
    return Path(os.environ["STEP_DIR"]) / "carrier.log"


def carrier_calls() -> list[str]:
    path = _carrier()
    return path.read_text().splitlines() if path.exists() else []


def carrier_find(key: str) -> str | None:
    """Reconcile: the carrier knows our purchases by the key we sent it."""
    for line in carrier_calls():
        sent, receipt = line.split(" ")
        if sent == key:
            return receipt
    return None


def carrier_buy(key: str) -> str:
    receipt = f"R{len(carrier_calls()) + 1}"
    with _carrier().open("a") as f:
        f.write(f"{key} {receipt}\n")
    return receipt


@job("tests.contract.purchase", steps=True, timeout=3)
async def purchase(shipment: str) -> None:
    async with claim(f"purchase:{shipment}") as step:
        if step.recorded:
            return
        receipt = None if step.first else carrier_find(step.key)
        if receipt is None:
            receipt = carrier_buy(step.key)
            pause = Path(os.environ["STEP_DIR"]) / "pause"
            if pause.exists():
                (Path(os.environ["STEP_DIR"]) / "reached").write_text(receipt)
                await asyncio.sleep(60)  # killed here, between the outside call and the record
        async with step.record({"receipt": receipt}):
            await db.fetch("INSERT INTO test_job_run (job_key) VALUES ({})", receipt)


@job("tests.contract.counts_written", timeout=10)
async def counts_written(key: str) -> None:
    """Records how many 'written' rows it saw: what its enqueuer wrote must be visible."""
    [row] = await db.fetch("SELECT count(*) AS n FROM test_job_run WHERE job_key = 'written'")
    await db.fetch("INSERT INTO test_job_run (job_key) VALUES ({})", f"{key} saw {row['n']}")


@job("tests.contract.blocks", timeout=30, max_attempts=2)
async def blocks(key: str) -> None:  # still running when its worker loses Redis
    await asyncio.sleep(20)
    await db.fetch("INSERT INTO test_job_run (job_key) VALUES ({})", key)


# Calls of collides_once per key; outside the job's transaction, which a retry rolls back.
COLLISION_CALLS: dict[str, int] = {}


@job("tests.contract.collides_once", timeout=10, max_attempts=1)
async def collides_once(key: str) -> None:
    COLLISION_CALLS[key] = call = COLLISION_CALLS.get(key, 0) + 1
    await db.fetch("INSERT INTO test_job_run (job_key) VALUES ({})", f"{key} call {call}")
    if call == 1:
        # A real 40001 from PostgreSQL, as a concurrent serialisable transaction would cause.
        await db.fetch(
            "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40001',"
            " MESSAGE = 'could not serialize access due to concurrent update'; END $$"
        )


CONTRACT_JOBS = [sleeps, slow_record, bad_value, purchase, counts_written, collides_once, blocks]
