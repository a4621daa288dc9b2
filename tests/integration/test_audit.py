"""The audit trail: appended in the caller's transaction, refused to change, verified by the CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg
import pytest

from core import db
from core.audit.services import record, verify_chain
from core.settings import load_settings
from tests.servers import ROOT


async def add_events(n: int) -> None:
    for i in range(1, n + 1):
        async with db.transaction():
            await record(
                actor="user:7",
                action="shipment.approved",
                subject_type="shipment",
                subject_id=i,
                before={"state": "packed"},
                after={"state": "approved"},
                reason="checked temperature plan",
            )


def audit_verify() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api", "audit", "verify"],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def tamper(sql: str, *args: object) -> None:
    # What a superuser with direct database access could do: triggers off, then edit.
    async with db.transaction():
        await db.fetch("SET LOCAL session_replication_role = replica")
        await db.fetch(sql, *args)


async def test_events_chain_and_verify():
    await add_events(3)
    rows = await db.fetch("SELECT seq, subject_id, actor, reason FROM audit_event ORDER BY seq")
    assert rows == [
        {"seq": i, "subject_id": str(i), "actor": "user:7", "reason": "checked temperature plan"}
        for i in (1, 2, 3)
    ]
    report = await verify_chain()
    assert (report.ok, report.checked) == (True, 3)


async def test_an_event_in_a_rolled_back_transaction_leaves_no_trace():
    with pytest.raises(ZeroDivisionError):
        async with db.transaction():
            await record(actor="system", action="x.y", subject_type="x", subject_id=1)
            1 / 0  # noqa: B018
    assert await db.fetch("SELECT count(*) AS n FROM audit_event") == [{"n": 0}]
    await add_events(1)
    assert await db.fetch("SELECT seq FROM audit_event") == [{"seq": 1}]


async def test_the_database_refuses_update_and_delete():
    await add_events(1)
    for sql in (
        "UPDATE audit_event SET reason = 'x'",
        "DELETE FROM audit_event",
        "TRUNCATE audit_event",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            async with db.transaction():
                await db.fetch(sql)
    assert await db.fetch("SELECT count(*) AS n, max(reason) AS r FROM audit_event") == [
        {"n": 1, "r": "checked temperature plan"}
    ]


async def test_concurrent_writers_get_gapless_seqs_and_a_valid_chain():
    async def one(i: int) -> None:
        async with db.transaction():
            await record(actor=f"user:{i}", action="a.b", subject_type="t", subject_id=i)

    await asyncio.gather(*(one(i) for i in range(12)))
    seqs = [r["seq"] for r in await db.fetch("SELECT seq FROM audit_event ORDER BY seq")]
    assert seqs == list(range(1, 13))
    assert (await verify_chain()).ok


async def test_record_refuses_to_run_outside_a_transaction():
    with pytest.raises(RuntimeError, match=r"inside core\.db\.transaction"):
        await record(actor="system", action="a.b", subject_type="t", subject_id=1)


async def test_cli_verify_passes_on_an_intact_trail():
    await add_events(3)
    result = await asyncio.to_thread(audit_verify)
    anchor_file = load_settings().audit_anchor_file
    assert (result.returncode, result.stdout.strip()) == (
        0,
        f"audit trail intact: 3 event(s) checked; the outside anchor {anchor_file} is not yet "
        "written (the trail is younger than 10 minutes)",
    )


async def test_cli_verify_fails_and_names_an_altered_row():
    await add_events(3)
    await tamper("UPDATE audit_event SET reason = 'nothing to see' WHERE seq = 2")
    result = await asyncio.to_thread(audit_verify)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "audit trail broken at seq 2: row 2 was altered (its contents do not match its hash)"
    )


async def test_cli_verify_fails_and_names_a_deleted_row():
    await add_events(4)
    await tamper("DELETE FROM audit_event WHERE seq = 3")
    result = await asyncio.to_thread(audit_verify)
    assert result.returncode == 1
    assert result.stderr.strip() == "audit trail broken at seq 3: row 3 is missing (next row is 4)"


async def test_cli_verify_finds_an_altered_payload():
    await add_events(2)
    await tamper("UPDATE audit_event SET after = {}::jsonb WHERE seq = 1", '{"state": "rejected"}')
    result = await asyncio.to_thread(audit_verify)
    assert result.returncode == 1
    assert "broken at seq 1: row 1 was altered" in result.stderr


@pytest.mark.parametrize(
    "value",
    [
        -0.0,  # a fridge reading of -0.04 rounded to one decimal
        1e16,  # JSONB writes this back as 10000000000000000
        1e-7,
        0.1 + 0.2,
        123456789.123456789,
        2**70,
        "température 5 °C",
        {"nested": [1, 2.5, None, True, {"z": "last", "a": "first"}]},
    ],
    ids=repr,
)
async def test_payloads_that_jsonb_rewrites_still_verify(value):
    async with db.transaction():
        await record(
            actor="user:1",
            action="reading.logged",
            subject_type="logger",
            subject_id="L1",
            before=None,
            after={"value": value},
        )
    report = await verify_chain()
    assert (report.ok, report.checked) == (True, 1), report.sentence()
