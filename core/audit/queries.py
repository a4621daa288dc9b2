"""Reads of the audit trail (newest first, keyset-paged by seq)."""

from __future__ import annotations

from typing import Any

from core.audit.tables import AuditEvent

MAX_PAGE = 200


async def list_events(
    *,
    subject_type: str | None = None,
    subject_id: str | None = None,
    actor: str | None = None,
    before_seq: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    query = AuditEvent.select(
        AuditEvent.seq,
        AuditEvent.occurred_at,
        AuditEvent.actor,
        AuditEvent.action,
        AuditEvent.subject_type,
        AuditEvent.subject_id,
        AuditEvent.before,
        AuditEvent.after,
        AuditEvent.reason,
        AuditEvent.request_id,
    )
    filters = (
        (AuditEvent.subject_type, subject_type),
        (AuditEvent.subject_id, subject_id),
        (AuditEvent.actor, actor),
    )
    for column, value in filters:
        if value is not None:
            query = query.where(column == value)
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    limit = min(max(limit, 1), MAX_PAGE)
    return await query.order_by(AuditEvent.seq, ascending=False).limit(limit).output(load_json=True)
