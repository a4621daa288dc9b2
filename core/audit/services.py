"""Write audit events and verify the chain. Called explicitly by services (no ORM hooks)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import structlog

from core import db
from core.audit.anchor import AnchorFileError, append, has_entries, locked, read_last
from core.audit.keys import chain_key, current_settings
from core.audit.model import (
    GENESIS_HASH,
    SEAL_ACTION,
    SEAL_SUBJECT_TYPE,
    Anchor,
    ChainReport,
    ChainVerifier,
    LegacySealCheck,
    canonical_json,
    normalise_payload,
    row_hash,
    seal_payload,
)
from core.clock import utcnow
from core.errors import InfusionError
from core.logging import get_logger
from core.settings import Settings

log = get_logger(__name__)

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
        row["row_hash"] = prev_hash = row_hash(row, chain_key())
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


async def verify_chain(settings: Settings | None = None) -> ChainReport:
    """Re-hash the whole trail in seq order, in batches; name the first bad row; then check
    that the trail still reaches the head anchored outside the database."""
    config = current_settings(settings)
    try:
        # The anchor first: one written while the rows are being read names a row that is
        # already committed, never one this read could miss.
        anchor = read_last(config.audit_anchor_file)
    except AnchorFileError as exc:
        # The path goes to the log; the report (which the API returns) does not name it.
        log.warning("audit.anchor_unreadable", path=str(exc.path), problem=exc.predicate)
        return ChainReport(checked=0, ok=False, problem=exc.predicate, anchor_gap="unreadable")
    verifier = ChainVerifier(chain_key(config), anchor=anchor, now=utcnow())
    after_seq = 0
    while True:
        rows = await rows_after(after_seq, VERIFY_BATCH)
        if not rows:
            break
        if not verifier.feed(rows):
            break
        after_seq = rows[-1]["seq"]
    return verifier.report()


async def rows_after(after_seq: int, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` rows after `after_seq`, in seq order, as the hash reads them."""
    rows = await db.fetch(
        "SELECT seq, occurred_at, actor, action, subject_type, subject_id, before::text,"
        " after::text, reason, request_id, prev_hash, row_hash FROM audit_event"
        " WHERE seq > {} ORDER BY seq LIMIT {}",
        after_seq,
        limit,
    )
    for row in rows:
        row["before"] = json.loads(row["before"]) if row["before"] is not None else None
        row["after"] = json.loads(row["after"]) if row["after"] is not None else None
    return rows


class SealRefused(InfusionError):
    code = "audit_seal_refused"
    status = 409


async def seal_legacy_chain(*, actor: str, settings: Settings | None = None) -> int:
    """Close a trail written before the chain was keyed with one keyed row, and anchor it;
    returns how many old rows it closed. Raises SealRefused (nothing written) otherwise.

    Run only by `infusion audit seal-legacy`, once, by an operator who upgraded a database
    from before the key; never automatically. A plain-sha256 trail is what anyone with
    database access but without the key can write, so sealing one that was keyed before would
    bless a rewrite: refused when any row is keyed or a seal (LegacySealCheck), and when the
    outside anchor file holds anything (only a keyed chain is ever anchored). Old rows stay
    exactly as written (rewriting evidence would be tampering); the seal's prev_hash is the
    last old hash and it names how many old rows it closes. The seal is then written to the
    anchor file at once, so `verify` has its outside anchor without waiting for the worker.
    """
    config = current_settings(settings)
    path = config.audit_anchor_file
    key = chain_key(config)
    if has_entries(path):
        raise SealRefused(
            f"the outside anchor {path} already holds entries, so this trail was keyed and "
            "anchored before; it cannot be sealed"
        )
    check = LegacySealCheck(key)
    async with db.transaction():
        # Held until COMMIT: no event can be appended between the check and the seal.
        await db.fetch("SELECT pg_advisory_xact_lock({})", AUDIT_LOCK_KEY)
        after_seq = 0
        while rows := await rows_after(after_seq, VERIFY_BATCH):
            if not check.feed(rows):
                break
            after_seq = rows[-1]["seq"]
        if (refusal := check.refusal()) is not None:
            raise SealRefused(refusal)
        seal = await record(
            actor=actor,
            action=SEAL_ACTION,
            subject_type=SEAL_SUBJECT_TYPE,
            subject_id="chain",
            after=seal_payload(check.legacy_rows),
            reason="audit chain keyed with HMAC-SHA256; earlier rows keep their sha256 hashes",
        )
    anchor = Anchor(seq=seal.row["seq"], row_hash=seal.row["row_hash"], at=utcnow())
    with locked(path):
        if has_entries(path):  # the worker anchored the seal meanwhile
            return check.legacy_rows
        append(path, anchor)
    return check.legacy_rows
