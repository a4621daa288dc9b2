"""Write audit events and verify the chain. Called explicitly by services (no ORM hooks)."""

from __future__ import annotations

import json
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

# Serialises appends so each row sees the true previous hash. Held until COMMIT, so audited
# transactions queue here for a moment; keep them short.
AUDIT_LOCK_KEY = 7_349_001
VERIFY_BATCH = 1000


async def record(
    *,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str | int,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
) -> int:
    """Append one event inside the caller's transaction; returns its seq.

    `before`/`after` hold what changed, never secrets (password hashes, token secrets) and
    only the patient data the record needs.
    """
    if not db.in_transaction():
        raise RuntimeError("audit.record() must run inside core.db.transaction()")
    if not actor or not action or not subject_type:
        raise ValueError("an audit event needs an actor, an action and a subject type")
    await db.fetch("SELECT pg_advisory_xact_lock({})", AUDIT_LOCK_KEY)
    last = await db.fetch("SELECT seq, row_hash FROM audit_event ORDER BY seq DESC LIMIT 1")
    seq, prev_hash = (last[0]["seq"] + 1, last[0]["row_hash"]) if last else (1, GENESIS_HASH)
    row: dict[str, Any] = {
        "seq": seq,
        "occurred_at": utcnow(),
        "actor": actor,
        "action": action,
        "subject_type": subject_type,
        "subject_id": str(subject_id),
        "before": await _as_jsonb_returns_it(before),
        "after": await _as_jsonb_returns_it(after),
        "reason": reason,
        "request_id": structlog.contextvars.get_contextvars().get("request_id", ""),
        "prev_hash": prev_hash,
    }
    row["row_hash"] = row_hash(row)
    from core.audit.tables import AuditEvent

    await AuditEvent.insert(AuditEvent(**row))
    return seq


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
