"""Tampering that direct database access allows is still found: a re-hash without the key,
deleting the newest rows (through the outside anchor), and old unkeyed trails are sealed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from core import db
from core.audit.anchor import AnchorMismatchError
from core.audit.jobs import anchor_audit_head_job, anchor_head
from core.audit.model import GENESIS_HASH, SEAL_ACTION, legacy_row_hash
from core.audit.services import record, seal_legacy_chain, verify_chain
from core.settings import Settings
from tests.servers import ROOT


async def add_events(n: int) -> None:
    for i in range(1, n + 1):
        async with db.transaction():
            await record(
                actor="user:7",
                action="shipment.approved",
                subject_type="shipment",
                subject_id=i,
                after={"state": "approved"},
                reason="checked temperature plan",
            )


def audit_verify(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api", "audit", "verify"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def as_owner_without_trigger(*statements: tuple[str, tuple[object, ...]]) -> None:
    """What the tables' owner can do: switch the append-only trigger off, edit, switch it on."""
    async with db.transaction():
        await db.fetch("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")
        for sql, args in statements:
            await db.fetch(sql, *args)
        await db.fetch("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only")


async def all_rows() -> list[dict]:
    rows = await db.fetch(
        "SELECT seq, occurred_at, actor, action, subject_type, subject_id, before::text,"
        " after::text, reason, request_id, prev_hash, row_hash FROM audit_event ORDER BY seq"
    )
    for row in rows:
        for name in ("before", "after"):
            row[name] = json.loads(row[name]) if row[name] is not None else None
    return rows


@pytest.fixture
def anchored(clean_state: Settings, tmp_path: Path) -> Settings:
    """This test's settings with an anchor file of its own."""
    return replace(clean_state, audit_anchor_file=tmp_path / "anchor" / "audit-anchor.jsonl")


async def test_an_edit_rehashed_with_plain_sha256_by_the_owner_fails_verify():
    await add_events(3)
    rows = await all_rows()
    rows[1]["reason"] = "nothing to see"
    prev, updates = rows[0]["row_hash"], []
    for row in rows[1:]:
        row["prev_hash"] = prev
        row["row_hash"] = prev = legacy_row_hash(row)
        updates.append(
            (
                "UPDATE audit_event SET reason = {}, prev_hash = {}, row_hash = {} WHERE seq = {}",
                (row["reason"], row["prev_hash"], row["row_hash"], row["seq"]),
            )
        )
    await as_owner_without_trigger(*updates)
    assert [r["reason"] for r in await all_rows()] == [
        "checked temperature plan",
        "nothing to see",
        "checked temperature plan",
    ]
    result = await asyncio.to_thread(audit_verify)
    assert (result.returncode, result.stderr.strip()) == (
        1,
        "audit trail broken at seq 2: row 2 was altered (its contents do not match its hash)",
    )


async def test_deleting_the_newest_rows_is_caught_through_the_outside_anchor(anchored):
    await add_events(5)
    written = await anchor_head(anchored)
    assert (written.seq if written else None) == 5
    await as_owner_without_trigger(("DELETE FROM audit_event WHERE seq > {}", (3,)))
    # Without the anchor the shorter trail looks whole…
    assert (await verify_chain(replace(anchored, audit_anchor_file=Path("/nonexistent")))).ok
    # …with it, the loss is named.
    result = await asyncio.to_thread(
        audit_verify, INFUSION_AUDIT_ANCHOR_FILE=str(anchored.audit_anchor_file)
    )
    at = written.line().split('"at":"')[1].split('"')[0]
    assert (result.returncode, result.stderr.strip()) == (
        1,
        f"audit trail broken at seq 4: rows 4 to 5 are missing (the outside anchor of {at} "
        "records seq 5; the trail ends at seq 3)",
    )


async def test_the_anchor_job_refuses_to_anchor_a_trail_that_lost_rows(anchored):
    await add_events(4)
    await anchor_head(anchored)
    before = anchored.audit_anchor_file.read_text()
    await as_owner_without_trigger(("DELETE FROM audit_event WHERE seq = {}", (4,)))
    async with db.transaction():
        await record(actor="system", action="a.b", subject_type="t", subject_id=1)
    with pytest.raises(AnchorMismatchError, match="no longer holds row 4 as anchored"):
        await anchor_head(anchored)
    assert anchored.audit_anchor_file.read_text() == before


async def test_the_anchor_file_gains_a_line_only_when_the_head_moves(anchored):
    assert await anchor_head(anchored) is None  # an empty trail: nothing to anchor
    assert not anchored.audit_anchor_file.exists()
    await add_events(2)
    first = await anchor_head(anchored)
    assert await anchor_head(anchored) is None
    await add_events(1)
    second = await anchor_head(anchored)
    rows = await all_rows()
    lines = anchored.audit_anchor_file.read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [2, 3]
    assert (first.row_hash, second.row_hash) == (rows[1]["row_hash"], rows[2]["row_hash"])
    report = await verify_chain(anchored)
    assert (report.ok, report.checked, report.anchor) == (True, 3, second)
    assert report.sentence() == (
        "audit trail intact: 3 event(s) checked; matches the outside anchor of seq 3"
    )


async def test_an_unreadable_anchor_file_is_reported(anchored):
    await add_events(1)
    anchored.audit_anchor_file.parent.mkdir(parents=True)
    anchored.audit_anchor_file.write_text('{"seq": 1, "row_ha\n')
    report = await verify_chain(anchored)
    assert (report.ok, report.sentence()) == (
        False,
        "audit trail not verified: the last line of the audit anchor file "
        f"{anchored.audit_anchor_file} is not an anchor",
    )


def test_the_anchor_job_runs_every_minute():
    assert anchor_audit_head_job.name == "core.anchor_audit_head"
    assert dict(anchor_audit_head_job.cron or {}) == {"second": 15}


async def test_a_trail_written_before_the_key_is_sealed_by_migrate_and_verifies():
    # Rows as the previous release wrote them: plain sha256.
    await add_events(3)
    rows, prev, updates = await all_rows(), GENESIS_HASH, []
    for row in rows:
        row["prev_hash"] = prev
        row["row_hash"] = prev = legacy_row_hash(row)
        updates.append(
            (
                "UPDATE audit_event SET prev_hash = {}, row_hash = {} WHERE seq = {}",
                (row["prev_hash"], row["row_hash"], row["seq"]),
            )
        )
    await as_owner_without_trigger(*updates)
    unsealed = await verify_chain()
    assert (unsealed.ok, unsealed.seq) == (False, 4)

    assert await seal_legacy_chain() == 3
    assert await seal_legacy_chain() is None  # once only
    [seal] = [r for r in await all_rows() if r["seq"] == 4]
    assert (seal["action"], seal["prev_hash"], seal["after"]) == (
        SEAL_ACTION,
        rows[2]["row_hash"],
        {"legacy_rows": 3, "legacy_scheme": "sha256"},
    )
    await add_events(1)
    report = await verify_chain()
    assert (report.ok, report.checked) == (True, 5), report.sentence()


async def test_a_sign_in_failure_is_kept_when_the_callers_transaction_rolls_back():
    from core.identity.sign_in_events import record_sign_in_failure, wait_for_pending

    with pytest.raises(ZeroDivisionError):
        async with db.transaction():
            # This transaction holds the audit lock: the failure must not wait for it.
            await record(actor="system", action="x.y", subject_type="x", subject_id=1)
            await record_sign_in_failure("Nobody.Here", None, False, "10.1.1.1")
            1 / 0  # noqa: B018
    await wait_for_pending()
    [row] = await all_rows()
    assert (row["seq"], row["action"], row["subject_type"], row["after"]) == (
        1,
        "user.sign_in_failed",
        "sign_in",
        {"client": "10.1.1.1", "reason": "unknown_username"},
    )
    assert "nobody" not in row["subject_id"].lower()
    assert (await verify_chain()).ok
