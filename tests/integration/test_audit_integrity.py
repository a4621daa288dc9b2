"""Tampering that direct database access allows is still found: a re-hash without the key,
deleting the newest rows (through the outside anchor), a lost anchor; old unkeyed trails are
sealed only by an explicit, one-time command that refuses a trail keyed before."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from core import db
from core.audit.anchor import AnchorMismatchError
from core.audit.jobs import anchor_audit_head_job, anchor_head
from core.audit.model import GENESIS_HASH, SEAL_ACTION, legacy_row_hash
from core.audit.services import record, verify_chain
from core.clock import FixedClock, set_clock, utcnow
from core.settings import Settings
from tests.integration.test_audit import add_events
from tests.servers import ROOT


async def add_old_events(n: int, *, age: timedelta = timedelta(hours=1)) -> None:
    """Events written `age` ago (what a trail in service for a while holds)."""
    previous = set_clock(FixedClock(utcnow() - age))
    try:
        await add_events(n)
    finally:
        set_clock(previous)


def infusion(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
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


async def rehash_all_in_plain_sha256(*, edit: dict[int, dict[str, object]] | None = None) -> None:
    """What the owner without the key can do: edit rows, then re-hash every row in sha256."""
    rows, prev, updates = await all_rows(), GENESIS_HASH, []
    for row in rows:
        row.update((edit or {}).get(row["seq"], {}))
        row["prev_hash"] = prev
        row["row_hash"] = prev = legacy_row_hash(row)
        updates.append(
            (
                "UPDATE audit_event SET actor = {}, reason = {}, prev_hash = {}, row_hash = {}"
                " WHERE seq = {}",
                (row["actor"], row["reason"], row["prev_hash"], row["row_hash"], row["seq"]),
            )
        )
    await as_owner_without_trigger(*updates)


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


async def test_an_unreadable_anchor_file_is_reported_without_its_path(anchored):
    await add_events(1)
    anchored.audit_anchor_file.parent.mkdir(parents=True)
    anchored.audit_anchor_file.write_text('{"seq": 1, "row_ha\n')
    report = await verify_chain(anchored)
    assert (report.ok, report.sentence()) == (
        False,
        "audit trail not verified: the outside anchor does not end with an anchor line",
    )
    result = await asyncio.to_thread(
        audit_verify, INFUSION_AUDIT_ANCHOR_FILE=str(anchored.audit_anchor_file)
    )
    assert (result.returncode, result.stderr.strip()) == (
        1,
        f"audit trail not verified: the outside anchor {anchored.audit_anchor_file} does not "
        "end with an anchor line",
    )


@pytest.mark.parametrize("file", ["absent", "empty"])
async def test_verify_fails_when_an_old_trail_has_no_outside_anchor(anchored, file):
    await add_old_events(2)
    if file == "empty":
        anchored.audit_anchor_file.parent.mkdir(parents=True)
        anchored.audit_anchor_file.write_text("\n")
    since = (await all_rows())[0]["occurred_at"].isoformat(timespec="microseconds")
    result = await asyncio.to_thread(
        audit_verify, INFUSION_AUDIT_ANCHOR_FILE=str(anchored.audit_anchor_file)
    )
    assert (result.returncode, result.stdout, result.stderr.strip()) == (
        1,
        "",
        f"audit trail not verified: the outside anchor {anchored.audit_anchor_file} is missing;"
        f" the newest rows cannot be checked (the trail holds events since {since}, which the "
        "anchor job should have anchored within 10 minutes)",
    )
    # Anchored, the same trail verifies.
    await anchor_head(anchored)
    assert (await verify_chain(anchored)).ok


async def test_the_anchor_job_never_anchors_an_unkeyed_head(anchored):
    await add_events(2)
    await rehash_all_in_plain_sha256()
    with pytest.raises(AnchorMismatchError, match="newest row 2 is not keyed"):
        await anchor_head(anchored)
    assert not anchored.audit_anchor_file.exists()


def test_the_anchor_job_runs_every_minute():
    assert anchor_audit_head_job.name == "core.anchor_audit_head"
    assert dict(anchor_audit_head_job.cron or {}) == {"second": 15}


async def test_migrate_does_not_seal_a_trail_rewritten_in_plain_sha256(anchored):
    # The attack: the owner blames someone else for an approval, re-hashes all in sha256…
    await add_old_events(3)
    await rehash_all_in_plain_sha256(edit={2: {"actor": "user:99"}})
    refused = (
        1,
        "audit trail broken at seq 4: rows 1 to 3 carry the old unkeyed hash and no keyed seal "
        "follows them (anyone with database access could have written them)",
    )
    result = await asyncio.to_thread(audit_verify, INFUSION_AUDIT_ANCHOR_FILE="/nonexistent")
    assert (result.returncode, result.stderr.strip()) == refused
    # …and a routine migrate no longer seals it.
    migrate = await asyncio.to_thread(infusion, "migrate")
    assert (migrate.returncode, migrate.stdout.strip()) == (0, "database is up to date")
    assert [r["seq"] for r in await all_rows()] == [1, 2, 3]
    result = await asyncio.to_thread(audit_verify, INFUSION_AUDIT_ANCHOR_FILE="/nonexistent")
    assert (result.returncode, result.stderr.strip()) == refused


async def test_seal_legacy_refuses_a_trail_that_was_anchored_before(anchored):
    await add_events(3)
    await anchor_head(anchored)
    anchor_before = anchored.audit_anchor_file.read_text()
    await rehash_all_in_plain_sha256(edit={2: {"actor": "user:99"}})
    before = await all_rows()
    result = await asyncio.to_thread(
        infusion,
        "audit",
        "seal-legacy",
        INFUSION_AUDIT_ANCHOR_FILE=str(anchored.audit_anchor_file),
    )
    assert (result.returncode, result.stdout, result.stderr.strip()) == (
        1,
        "",
        f"error: the outside anchor {anchored.audit_anchor_file} already holds entries, so "
        "this trail was keyed and anchored before; it cannot be sealed",
    )
    assert await all_rows() == before
    assert anchored.audit_anchor_file.read_text() == anchor_before


async def test_seal_legacy_refuses_a_trail_holding_a_keyed_row(anchored):
    # Only the newest rows rewritten in sha256, the anchor file lost: row 1 still says keyed.
    await add_events(3)
    rows = await all_rows()
    rows[2]["actor"] = "user:99"
    rows[2]["row_hash"] = legacy_row_hash(rows[2])
    await as_owner_without_trigger(
        (
            "UPDATE audit_event SET actor = {}, row_hash = {} WHERE seq = 3",
            (rows[2]["actor"], rows[2]["row_hash"]),
        )
    )
    before = await all_rows()
    result = await asyncio.to_thread(
        infusion, "audit", "seal-legacy", INFUSION_AUDIT_ANCHOR_FILE=str(anchored.audit_anchor_file)
    )
    assert (result.returncode, result.stderr.strip()) == (
        1,
        "error: the audit trail was keyed already (row 1 carries a keyed hash); only a trail "
        "written entirely before the key can be sealed",
    )
    assert await all_rows() == before
    assert not anchored.audit_anchor_file.exists()


async def test_seal_legacy_has_nothing_to_seal_in_a_fresh_trail(anchored):
    result = await asyncio.to_thread(
        infusion, "audit", "seal-legacy", INFUSION_AUDIT_ANCHOR_FILE=str(anchored.audit_anchor_file)
    )
    assert (result.returncode, result.stderr.strip()) == (
        1,
        "error: the audit trail is empty: there is nothing to seal (new events are keyed)",
    )
    assert await all_rows() == []
    assert not anchored.audit_anchor_file.exists()


async def test_a_trail_written_before_the_key_is_sealed_once_by_the_operator(anchored):
    # Rows as the previous release wrote them, months ago: plain sha256.
    await add_old_events(3, age=timedelta(days=90))
    await rehash_all_in_plain_sha256()
    rows = await all_rows()
    unsealed = await verify_chain(anchored)
    assert (unsealed.ok, unsealed.seq) == (False, 4)
    env = {"INFUSION_AUDIT_ANCHOR_FILE": str(anchored.audit_anchor_file)}

    result = await asyncio.to_thread(infusion, "audit", "seal-legacy", **env)
    assert (result.returncode, result.stdout.strip()) == (
        0,
        "audit trail sealed: 3 row(s) written before the key are now covered",
    )
    [seal] = [r for r in await all_rows() if r["seq"] == 4]
    assert (seal["actor"], seal["action"], seal["prev_hash"], seal["after"]) == (
        f"cli:{getpass.getuser()}",
        SEAL_ACTION,
        rows[2]["row_hash"],
        {"legacy_rows": 3, "legacy_scheme": "sha256"},
    )
    # The seal is anchored at once: verify has its outside anchor without waiting for a worker.
    [line] = anchored.audit_anchor_file.read_text().splitlines()
    assert (json.loads(line)["seq"], json.loads(line)["row_hash"]) == (4, seal["row_hash"])

    again = await asyncio.to_thread(infusion, "audit", "seal-legacy", **env)
    assert (again.returncode, again.stderr.strip()) == (
        1,
        f"error: the outside anchor {anchored.audit_anchor_file} already holds entries, so "
        "this trail was keyed and anchored before; it cannot be sealed",
    )
    assert len(await all_rows()) == 4
    await add_events(1)
    report = await verify_chain(anchored)
    assert (report.ok, report.checked, report.anchor.seq) == (True, 5, 4), report.sentence()


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
