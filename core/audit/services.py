"""Write audit events and verify the chain. Called explicitly by services (no ORM hooks)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import structlog

from core import db
from core.audit.model import (
    GENESIS_HASH,
    ChainReport,
    ChainVerifier,
    canonical_json,
    normalise_payload,
    row_hash,
)
from core.clock import utcnow

# Serialises appends so each row sees the true previous hash. Taken only when the unit of work
# writes its buffered events, just before COMMIT, so it is held for milliseconds and never
# across a request's or a job's own work.
AUDIT_LOCK_KEY = 7_349_001
VERIFY_BATCH = 1000
_PENDING = "audit_event"


@dataclass
class PendingEvent:
    """An event recorded in the open transaction; written (and numbered) just before COMMIT.

    `seq` is None until then: it is only known once the event's place in the chain is, which
    depends on the transactions that commit first. After-commit hooks can read it.
    """

    row: dict[str, Any]

    @property
    def seq(self) -> int | None:
        return self.row.get("seq")


async def record(
    *,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str | int,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
) -> PendingEvent:
    """Add one event to the caller's transaction; it is written only if that transaction commits.

    `before`/`after` hold what changed, never secrets (password hashes, token secrets) and
    only the patient data the record needs. A payload PostgreSQL cannot store fails here, not
    at COMMIT. Events are written in the order they were recorded.
    """
    if not db.in_transaction():
        raise RuntimeError("audit.record() must run inside core.db.transaction()")
    if not actor or not action or not subject_type:
        raise ValueError("an audit event needs an actor, an action and a subject type")
    event = PendingEvent(
        {
            "occurred_at": utcnow(),
            "actor": actor,
            "action": action,
            "subject_type": subject_type,
            "subject_id": str(subject_id),
            "before": await _as_jsonb_returns_it(before),
            "after": await _as_jsonb_returns_it(after),
            "reason": reason,
            "request_id": structlog.contextvars.get_contextvars().get("request_id", ""),
        }
    )
    db.pending(_PENDING, _write).append(event)
    return event


async def _write(events: list[PendingEvent]) -> None:
    """Chain and insert the transaction's events; the lock is then held until COMMIT."""
    from core.audit.tables import AuditEvent

    await db.fetch("SELECT pg_advisory_xact_lock({})", AUDIT_LOCK_KEY)
    last = await db.fetch("SELECT seq, row_hash FROM audit_event ORDER BY seq DESC LIMIT 1")
    seq, prev_hash = (last[0]["seq"], last[0]["row_hash"]) if last else (0, GENESIS_HASH)
    rows = []
    for event in events:
        seq += 1
        row = {**event.row, "seq": seq, "prev_hash": prev_hash}
        row["row_hash"] = prev_hash = row_hash(row)
        rows.append(row)
    await AuditEvent.insert(*(AuditEvent(**row) for row in rows))
    # Only now, with the rows in place, do the events carry their number.
    for event, row in zip(events, rows, strict=True):
        event.row = row


async def _as_jsonb_returns_it(payload: dict[str, Any] | None) -> dict[str, Any] | None:
    """The payload exactly as `verify_chain` will read it back: JSONB rewrites some numbers
    (-0.0, 1e16, long decimals), so hash what PostgreSQL returns, not what we sent."""
    if payload is None:
        return None
    text = canonical_json(normalise_payload(payload))
    [row] = await db.fetch("SELECT {}::jsonb::text AS v", text)
    return json.loads(row["v"])


async def verify_chain() -> ChainReport:
    """Re-hash the whole trail in seq order, in batches; name the first bad row."""
    verifier = ChainVerifier()
    after_seq = 0
    while True:
        rows = await db.fetch(
            "SELECT seq, occurred_at, actor, action, subject_type, subject_id, before::text,"
            " after::text, reason, request_id, prev_hash, row_hash FROM audit_event"
            " WHERE seq > {} ORDER BY seq LIMIT {}",
            after_seq,
            VERIFY_BATCH,
        )
        if not rows:
            break
        for row in rows:
            row["before"] = json.loads(row["before"]) if row["before"] is not None else None
            row["after"] = json.loads(row["after"]) if row["after"] is not None else None
        if not verifier.feed(rows):
            break
        after_seq = rows[-1]["seq"]
    return verifier.report()
