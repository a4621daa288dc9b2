"""Tables of the shared kernel that are not identity or audit: the job outbox and step claims."""

from __future__ import annotations

from piccolo.columns import JSONB, Integer, Text, Timestamptz, Varchar
from piccolo.table import Table


class OutboxJob(Table, tablename="outbox_job"):
    """A job that must not be lost, written in the same transaction as the change that needs it.

    After COMMIT the job is pushed to arq; the job marks its row done in its own transaction.
    Redis may restart empty, so the sweeper re-enqueues rows that are neither done nor in Redis.
    """

    # Unique among runs that have not started (a partial index, see the migrations): the same
    # work enqueued while a run of it is running gets a new run, which waits for that one.
    job_id = Varchar(length=255, index=True, help_text="Deterministic id of the work")
    function = Varchar(length=100)
    args = JSONB(help_text="Ids only, never rows")
    # Times come from core.clock (injected in tests), never from the database's clock.
    created_at = Timestamptz(default=None)
    run_at = Timestamptz(default=None, help_text="Not before this time (deferred jobs)")
    enqueued_at = Timestamptz(null=True, default=None)
    started_at = Timestamptz(null=True, default=None, help_text="First attempt began")
    done_at = Timestamptz(null=True, default=None)
    failed_at = Timestamptz(null=True, default=None)
    attempts = Integer(default=0, help_text="Attempts begun (timed out and lost ones included)")
    requeues = Integer(default=0, help_text="Times the sweeper pushed it to Redis again")
    last_error = Text(default="", help_text="Redacted: never quotes stored values")


class JobClaim(Table, tablename="job_claim"):
    """The first step of a job that talks to the outside world (core.steps).

    Committed before the outside call, so it survives a crash after the call: a later run sees
    the claim and reconciles with the outside world instead of calling it again.
    """

    key = Varchar(length=255, unique=True, help_text="Idempotency key, also sent outside")
    job = Varchar(length=100, help_text="Job name that claimed it")
    claimed_at = Timestamptz(default=None)
    claims = Integer(default=1, help_text="Runs that reached the claim (more than 1: reconciled)")
    recorded_at = Timestamptz(null=True, default=None)
    result = JSONB(null=True, default=None, help_text="What was recorded (ids, not rows)")
