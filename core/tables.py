"""Tables of the shared kernel that are not identity or audit: the job outbox."""

from __future__ import annotations

from piccolo.columns import JSONB, Integer, Text, Timestamptz, Varchar
from piccolo.table import Table


class OutboxJob(Table, tablename="outbox_job"):
    """A job that must not be lost, written in the same transaction as the change that needs it.

    After COMMIT the job is pushed to arq; the job marks its row done in its own transaction.
    Redis may restart empty, so the sweeper re-enqueues rows that are neither done nor in Redis.
    """

    # Unique among pending rows only (a partial index, see the migration): the same work can
    # be enqueued again once an earlier run is done or failed.
    job_id = Varchar(length=255, index=True, help_text="Deterministic id of the work")
    function = Varchar(length=100)
    args = JSONB(help_text="Ids only, never rows")
    created_at = Timestamptz()
    run_at = Timestamptz(help_text="Not before this time (deferred jobs)")
    enqueued_at = Timestamptz(null=True, default=None)
    done_at = Timestamptz(null=True, default=None)
    failed_at = Timestamptz(null=True, default=None)
    attempts = Integer(default=0, help_text="Runs that raised")
    requeues = Integer(default=0, help_text="Times the sweeper found it missing from Redis")
    last_error = Text(default="")
