"""Jobs of the audit trail: anchor the chain's head outside the database every minute."""

from __future__ import annotations

import asyncio
import hmac
from pathlib import Path

from core import db
from core.audit.anchor import AnchorMismatchError, append, locked, read_last
from core.audit.keys import chain_key, current_settings
from core.audit.model import Anchor, row_hash
from core.audit.services import rows_after
from core.clock import utcnow
from core.logging import get_logger
from core.queue import job
from core.settings import Settings

log = get_logger(__name__)


async def anchor_head(settings: Settings | None = None) -> Anchor | None:
    """Append the chain's head to the anchor file when it moved; returns what was written.

    Refuses (and raises, so the failure is logged every minute and shows in the job's
    result) when the chain no longer holds the previously anchored row with the same hash:
    rows were deleted or rewritten, and a new anchor must not cover that up.

    No transaction is held while the file is locked, read or fsynced (architecture rule 2),
    and the blocking file calls run in a thread, off the event loop.
    """
    config = current_settings(settings)
    path = config.audit_anchor_file
    rows = await db.fetch("SELECT max(seq) AS seq FROM audit_event")
    if rows[0]["seq"] is None:
        return None
    [row] = await rows_after(rows[0]["seq"] - 1, 1)
    if not hmac.compare_digest(row_hash(row, chain_key(config)), row["row_hash"]):
        # Only a keyed head is anchored: an unsealed legacy trail (or a rewrite without the
        # key) must not get an anchor, and `seal-legacy` relies on an anchor meaning "keyed".
        log.error("audit.head_not_keyed", head_seq=row["seq"])
        raise AnchorMismatchError(
            f"the audit trail's newest row {row['seq']} is not keyed; run infusion audit verify"
        )
    head = Anchor(seq=row["seq"], row_hash=row["row_hash"], at=utcnow())
    last = await asyncio.to_thread(read_last, path)
    if last is not None:
        if (last.seq, last.row_hash) == (head.seq, head.row_hash):
            return None
        held = await db.fetch("SELECT row_hash FROM audit_event WHERE seq = {}", last.seq)
        if not held or held[0]["row_hash"] != last.row_hash:
            log.error("audit.anchor_mismatch", anchored_seq=last.seq, head_seq=head.seq)
            raise AnchorMismatchError(
                f"the audit trail no longer holds row {last.seq} as anchored; run "
                "infusion audit verify"
            )
    if not await asyncio.to_thread(_append_after, path, last, head):
        return None  # another worker anchored meanwhile; the next tick checks again
    # The log store is a second copy outside the database (hashes only, no patient data).
    log.info("audit.head_anchored", seq=head.seq, row_hash=head.row_hash)
    return head


def _append_after(path: Path, last: Anchor | None, head: Anchor) -> bool:
    """Append `head` if the file still ends with `last` (what was checked against the chain)."""
    with locked(path):
        now_last = read_last(path)
        if (now_last and (now_last.seq, now_last.row_hash)) != (last and (last.seq, last.row_hash)):
            return False
        append(path, head)
    return True


# steps=True: no transaction around the body; its queries run on their own.
@job("core.anchor_audit_head", timeout=60, cron={"second": 15}, steps=True)
async def anchor_audit_head_job() -> None:
    await anchor_head()


JOBS = [anchor_audit_head_job]
