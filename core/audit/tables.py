"""The append-only audit trail (architecture rule: every state change writes an event)."""

from __future__ import annotations

from piccolo.columns import JSONB, BigInt, Text, Timestamptz, Varchar
from piccolo.table import Table


class AuditEvent(Table, tablename="audit_event"):
    """One state change: who, what, to which subject, before/after, why, when.

    Rows are hash-chained (`row_hash`, an HMAC keyed outside the database, covers the row and
    `prev_hash`), `seq` has no gaps, a trigger refuses UPDATE, DELETE and TRUNCATE, and the
    app's database role may only read and append (core/db_roles.py). Tampering needs the
    owner, and `infusion audit verify` still finds it, with the outside anchor for removed
    newest rows.
    """

    seq = BigInt(unique=True, help_text="1, 2, 3… without gaps")
    occurred_at = Timestamptz(default=None)  # core.clock, set by record(); never the DB clock
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
