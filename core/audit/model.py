"""The audit hash chain as pure functions: how a row's hash is made and how a chain is checked.

Each row's hash covers its own fields and the previous row's hash, so changing, removing or
reordering any row breaks every hash after it. `seq` runs 1, 2, 3… without gaps, so a removed
row is named by the number that is missing. (Removing the newest rows leaves a shorter chain
that is still valid: only an outside copy of the last hash can show that.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64
HASHED_FIELDS = (
    "seq",
    "occurred_at",
    "actor",
    "action",
    "subject_type",
    "subject_id",
    "before",
    "after",
    "reason",
    "request_id",
    "prev_hash",
)


def canonical_json(value: Any) -> str:
    """One spelling for a value: sorted keys, no spaces, no NaN (JSONB refuses it anyway)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def normalise_payload(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Before/after as they will read back from JSONB (dates and decimals become strings)."""
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str, allow_nan=False))


def _timestamp(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("audit timestamps must be aware")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def row_hash(row: Mapping[str, Any]) -> str:
    fields = {name: row[name] for name in HASHED_FIELDS}
    fields["occurred_at"] = _timestamp(fields["occurred_at"])
    return hashlib.sha256(canonical_json(fields).encode()).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    checked: int
    ok: bool
    seq: int | None = None
    problem: str | None = None

    def sentence(self) -> str:
        if self.ok:
            return f"audit trail intact: {self.checked} event(s) checked"
        return f"audit trail broken at seq {self.seq}: {self.problem}"


class ChainVerifier:
    """Feed rows in seq order; stops at the first problem."""

    def __init__(self) -> None:
        self.expected_seq = 1
        self.prev_hash = GENESIS_HASH
        self.checked = 0
        self.failure: ChainReport | None = None

    def feed(self, rows: Iterable[Mapping[str, Any]]) -> bool:
        """Returns False once a problem was found (further rows are ignored)."""
        for row in rows:
            if self.failure is not None:
                return False
            self._check(row)
        return self.failure is None

    def _fail(self, seq: int, problem: str) -> None:
        self.failure = ChainReport(checked=self.checked, ok=False, seq=seq, problem=problem)

    def _check(self, row: Mapping[str, Any]) -> None:
        seq = row["seq"]
        if seq != self.expected_seq:
            # Rows arrive in seq order and seq is unique, so a jump means rows were removed.
            self._fail(self.expected_seq, f"row {self.expected_seq} is missing (next row is {seq})")
            return
        if row["prev_hash"] != self.prev_hash:
            self._fail(seq, f"row {seq} does not follow row {seq - 1} (prev_hash differs)")
            return
        if row_hash(row) != row["row_hash"]:
            self._fail(seq, f"row {seq} was altered (its contents do not match its hash)")
            return
        self.checked += 1
        self.expected_seq += 1
        self.prev_hash = row["row_hash"]

    def report(self) -> ChainReport:
        return self.failure or ChainReport(checked=self.checked, ok=True)
