"""Audit trail routes: pharmacists and admins read the trail and check its chain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from litestar.params import Parameter

from core.audit.queries import MAX_PAGE, list_events
from core.audit.services import verify_chain
from core.identity.model import Role
from core.web.guards import requires


class AuditEventOut(msgspec.Struct):
    seq: int
    occurred_at: datetime
    actor: str
    action: str
    subject_type: str
    subject_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str
    request_id: str


class AuditPage(msgspec.Struct):
    events: list[AuditEventOut]
    next_before_seq: int | None


class ChainStatus(msgspec.Struct):
    ok: bool
    checked: int
    seq: int | None
    message: str
    # The newest head anchored outside the database that the trail was checked against, also
    # when that check failed (None: no anchor was read; `message` says why).
    anchored_seq: int | None


class AuditController(Controller):
    path = "/api/audit"
    tags = ["audit"]
    # Pharmacists decide on excursions and recalls from this trail; admins investigate.
    guards = [requires(Role.pharmacist, Role.admin)]

    @get("/events", operation_id="listAuditEvents", summary="Audit events, newest first")
    async def events(
        self,
        subject_type: Annotated[str | None, Parameter(max_length=50)] = None,
        subject_id: Annotated[str | None, Parameter(max_length=100)] = None,
        actor: Annotated[str | None, Parameter(max_length=100)] = None,
        before_seq: Annotated[
            int | None,
            Parameter(ge=1, le=2**63 - 1, description="Page: events older than this seq"),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 50,
    ) -> AuditPage:
        rows = await list_events(
            subject_type=subject_type,
            subject_id=subject_id,
            actor=actor,
            before_seq=before_seq,
            limit=limit,
        )
        events = [AuditEventOut(**row) for row in rows]
        more = len(events) == limit and events[-1].seq > 1
        return AuditPage(events=events, next_before_seq=events[-1].seq if more else None)

    @get("/verify", operation_id="verifyAuditChain", summary="Re-hash the whole trail")
    async def verify(self, state: State) -> ChainStatus:
        report = await verify_chain(state.settings)
        return ChainStatus(
            ok=report.ok,
            checked=report.checked,
            seq=report.seq,
            # Without the anchor file's path: the server's layout is not the caller's.
            message=report.sentence(),
            anchored_seq=report.anchor.seq if report.anchor else None,
        )
