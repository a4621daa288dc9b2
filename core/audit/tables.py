"""The append-only audit trail (architecture rule: every state change writes an event)."""

from __future__ import annotations

from piccolo.columns import JSONB, BigInt, Text, Timestamptz, Varchar
from piccolo.table import Table


class AuditEvent(Table, tablename="audit_event"):
    """One state change: who, what, to which subject, before/after, why, when.

    Rows are hash-chained (`row_hash` covers the row and `prev_hash`), `seq` has no gaps, and a
    trigger refuses UPDATE and DELETE, so tampering needs a superuser and is still found by
    `infusion audit verify`.
    """

    seq = BigInt(unique=True, help_text="1, 2, 3… without gaps")
    occurred_at = Timestamptz()
    actor = Varchar(length=100, help_text="user:<id>, token:<id>, system, job:<name>")
    action = Varchar(length=100, help_text="dotted verb, e.g. user.created")
    subject_type = Varchar(length=50)
    subject_id = Varchar(length=100)
    before = JSONB(null=True, default=None)
    after = JSONB(null=True, default=None)
    reason = Text(default="")
    request_id = Varchar(length=64, default="")
    prev_hash = Varchar(length=64)
    row_hash = Varchar(length=64, unique=True)
