"""The audit hash chain as pure functions: how a row's hash is made and how a chain is checked.

Each row's hash covers its own fields and the previous row's hash, so changing, removing or
reordering any row breaks every hash after it. `seq` runs 1, 2, 3… without gaps, so a removed
row is named by the number that is missing.

The hash is an HMAC-SHA256 keyed with the audit key (INFUSION_AUDIT_KEY), which lives in the
app's environment and never in the database: someone with full database access but not the
key (a DBA, a stolen backup) can edit a row but cannot make a hash that verifies. Removing the
newest rows leaves a shorter chain that is still valid; the outside anchor (`Anchor`, written
by a cron job to a file) shows that.

Chains written before the key existed used plain sha256 ("legacy" rows). They are kept as they
are (rewriting evidence would itself be tampering) and are accepted only as a prefix followed
by a keyed *seal* row (`SEAL_ACTION`) that names how many legacy rows it closes; its
prev_hash is the last legacy hash, so the keyed part vouches for that prefix from then on. A
chain of legacy rows with no seal after them is refused: anyone could have written it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

GENESIS_HASH = "0" * 64
SEAL_ACTION = "audit.chain_keyed"
SEAL_SUBJECT_TYPE = "audit_trail"
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
# Domain separation: the same SECRET_KEY also keys API-token hashes; the audit key derived
# from it must not be usable as a token key or the other way round.
AUDIT_KEY_LABEL = b"infusion audit chain v1"
# The anchor job runs every minute; a trail with events older than ten of its runs and no
# anchor has lost its anchor (or never had its worker), so `verify` cannot vouch for its
# newest rows and says so instead of passing.
ANCHOR_EXPECTED_WITHIN = timedelta(minutes=10)


def derive_audit_key(secret_key: str) -> str:
    """The audit key when INFUSION_AUDIT_KEY is not set: an HMAC of a fixed label."""
    return hmac.new(secret_key.encode(), AUDIT_KEY_LABEL, hashlib.sha256).hexdigest()


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


def _hashed_text(row: Mapping[str, Any]) -> bytes:
    fields = {name: row[name] for name in HASHED_FIELDS}
    fields["occurred_at"] = _timestamp(fields["occurred_at"])
    return canonical_json(fields).encode()


def row_hash(row: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 of the row's canonical JSON (which includes prev_hash)."""
    if len(key) < 32:
        raise ValueError("the audit key must be at least 32 bytes")
    return hmac.new(key, _hashed_text(row), hashlib.sha256).hexdigest()


def legacy_row_hash(row: Mapping[str, Any]) -> str:
    """The unkeyed sha256 of rows written before the chain was keyed (verification only)."""
    return hashlib.sha256(_hashed_text(row)).hexdigest()


def seal_payload(legacy_rows: int) -> dict[str, Any]:
    return {"legacy_rows": legacy_rows, "legacy_scheme": "sha256"}


@dataclass(frozen=True)
class Anchor:
    """A copy of the chain's head kept outside the database: (seq, row_hash) and when."""

    seq: int
    row_hash: str
    at: datetime

    def line(self) -> str:
        return canonical_json(
            {"seq": self.seq, "row_hash": self.row_hash, "at": _timestamp(self.at)}
        )

    @classmethod
    def parse(cls, line: str) -> Anchor:
        """One line of the anchor file; ValueError for anything else."""
        try:
            data = json.loads(line)
            seq, digest = data["seq"], data["row_hash"]
            at = datetime.fromisoformat(data["at"])
        except (ValueError, KeyError, TypeError):
            raise ValueError("not an audit anchor line") from None
        if not isinstance(seq, int) or seq < 1 or not isinstance(digest, str) or at.tzinfo is None:
            raise ValueError("not an audit anchor line")
        return cls(seq=seq, row_hash=digest, at=at)


@dataclass(frozen=True)
class ChainReport:
    checked: int
    ok: bool
    seq: int | None = None
    problem: str | None = None
    # The outside anchor the chain was checked against, also when that check failed (None:
    # there was none to check).
    anchor: Anchor | None = None
    # Why no anchor was checked: "unreadable" (fails; `problem` says how), "missing" (fails:
    # the trail is old enough to have one), "pending" (passes: too young to have one yet).
    anchor_gap: str | None = None

    def sentence(self, anchor_file: str | None = None) -> str:
        """One sentence; `anchor_file` names the file (the CLI), left out where it would
        disclose a server path (the API)."""
        where = f"the outside anchor {anchor_file}" if anchor_file else "the outside anchor"
        if self.anchor_gap == "unreadable":
            return f"audit trail not verified: {where} {self.problem}"
        if self.anchor_gap == "missing":
            return (
                f"audit trail not verified: {where} is missing; the newest rows cannot be "
                f"checked ({self.problem})"
            )
        if not self.ok and self.seq is None:
            return f"audit trail not verified: {self.problem}"
        if not self.ok:
            return f"audit trail broken at seq {self.seq}: {self.problem}"
        text = f"audit trail intact: {self.checked} event(s) checked"
        if self.anchor_gap == "pending":
            minutes = int(ANCHOR_EXPECTED_WITHIN.total_seconds() // 60)
            return text + (
                f"; {where} is not yet written (the trail is younger than {minutes} minutes)"
            )
        if self.anchor is None:
            return text + "; the trail is empty, so there is no outside anchor yet"
        return text + f"; matches the outside anchor of seq {self.anchor.seq}"


class ChainVerifier:
    """Feed rows in seq order; stops at the first problem. `report()` then checks that the
    chain still reaches the outside anchor, or, when there is none, that the trail is too
    young to have one (`now` is the verifier's time)."""

    def __init__(self, key: bytes, *, anchor: Anchor | None, now: datetime) -> None:
        self.key = key
        self.anchor = anchor
        self.now = now
        self.oldest_at: datetime | None = None
        self.expected_seq = 1
        self.prev_hash = GENESIS_HASH
        self.checked = 0
        # None until the first row says which scheme the chain starts with.
        self.keyed: bool | None = None
        self.anchored_hash: str | None = None
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
        keyed_ok = hmac.compare_digest(row_hash(row, self.key), row["row_hash"])
        if self.keyed:
            if not keyed_ok:
                self._fail(seq, f"row {seq} was altered (its contents do not match its hash)")
                return
        elif keyed_ok:
            # The first keyed row after legacy rows must be the seal that closes them.
            if self.keyed is False and not _is_seal(row, legacy_rows=seq - 1):
                self._fail(seq, f"row {seq} follows unkeyed rows but is not their seal")
                return
            self.keyed = True
        elif hmac.compare_digest(legacy_row_hash(row), row["row_hash"]):
            self.keyed = False
        else:
            self._fail(seq, f"row {seq} was altered (its contents do not match its hash)")
            return
        if self.oldest_at is None:
            self.oldest_at = row["occurred_at"]
        self.checked += 1
        self.expected_seq += 1
        self.prev_hash = row["row_hash"]
        if self.anchor is not None and seq == self.anchor.seq:
            self.anchored_hash = row["row_hash"]

    def report(self) -> ChainReport:
        if self.failure is not None:
            return self.failure
        if self.keyed is False:
            return ChainReport(
                checked=self.checked,
                ok=False,
                seq=self.expected_seq,
                problem=f"rows 1 to {self.checked} carry the old unkeyed hash and no keyed seal "
                "follows them (anyone with database access could have written them)",
            )
        anchor = self.anchor
        if anchor is not None:
            at = _timestamp(anchor.at)
            if anchor.seq > self.checked:
                return ChainReport(
                    checked=self.checked,
                    ok=False,
                    seq=self.checked + 1,
                    problem=f"rows {self.checked + 1} to {anchor.seq} are missing (the outside "
                    f"anchor of {at} records seq {anchor.seq}; the trail ends at seq "
                    f"{self.checked})",
                    anchor=anchor,
                )
            if not hmac.compare_digest(self.anchored_hash or "", anchor.row_hash):
                return ChainReport(
                    checked=self.checked,
                    ok=False,
                    seq=anchor.seq,
                    problem=f"row {anchor.seq} does not match the outside anchor of {at}",
                    anchor=anchor,
                )
            return ChainReport(checked=self.checked, ok=True, anchor=anchor)
        if self.oldest_at is None:
            return ChainReport(checked=0, ok=True)  # nothing written, nothing to anchor
        since = _timestamp(self.oldest_at)
        if self.now - self.oldest_at >= ANCHOR_EXPECTED_WITHIN:
            minutes = int(ANCHOR_EXPECTED_WITHIN.total_seconds() // 60)
            return ChainReport(
                checked=self.checked,
                ok=False,
                problem=f"the trail holds events since {since}, which the anchor job should "
                f"have anchored within {minutes} minutes",
                anchor_gap="missing",
            )
        return ChainReport(checked=self.checked, ok=True, anchor_gap="pending")


def _is_seal(row: Mapping[str, Any], *, legacy_rows: int) -> bool:
    return (
        row["action"] == SEAL_ACTION
        and row["subject_type"] == SEAL_SUBJECT_TYPE
        and row["after"] == seal_payload(legacy_rows)
    )


class LegacySealCheck:
    """Whether a trail may be sealed (`infusion audit seal-legacy`): feed every row in seq
    order, then `refusal()` is None or the one sentence why not.

    Only a trail written entirely before the key may be sealed: every row a linked, unedited
    plain-sha256 row. A trail that holds any row keyed with our key, or a seal, was keyed
    already; a plain-sha256 trail then can only be a rewrite by someone without the key, and
    sealing it would bless the forgery.
    """

    def __init__(self, key: bytes) -> None:
        self.key = key
        # The chain rules (no gaps, each row linked, legacy hashes match) are the verifier's.
        self.chain = ChainVerifier(key, anchor=None, now=datetime.now(UTC))
        self._refusal: str | None = None

    def feed(self, rows: Iterable[Mapping[str, Any]]) -> bool:
        """Returns False once the trail is known not to be sealable."""
        for row in rows:
            if self._refusal is not None:
                return False
            if row["action"] == SEAL_ACTION:
                self._refusal = (
                    f"the audit trail was keyed already (row {row['seq']} is its "
                    f"{SEAL_ACTION} seal); it cannot be sealed again"
                )
            elif hmac.compare_digest(row_hash(row, self.key), row["row_hash"]):
                self._refusal = (
                    f"the audit trail was keyed already (row {row['seq']} carries a keyed "
                    "hash); only a trail written entirely before the key can be sealed"
                )
            elif not self.chain.feed([row]):
                report = self.chain.report()
                self._refusal = (
                    f"the audit trail cannot be sealed, it is broken at seq {report.seq}: "
                    f"{report.problem}"
                )
        return self._refusal is None

    def refusal(self) -> str | None:
        if self._refusal is None and self.chain.checked == 0:
            return "the audit trail is empty: there is nothing to seal (new events are keyed)"
        return self._refusal

    @property
    def legacy_rows(self) -> int:
        return self.chain.checked
