"""The audit hash chain finds any altered, removed or re-linked row, and names it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.audit.model import (
    ANCHOR_EXPECTED_WITHIN,
    GENESIS_HASH,
    SEAL_ACTION,
    SEAL_SUBJECT_TYPE,
    Anchor,
    ChainVerifier,
    LegacySealCheck,
    derive_audit_key,
    legacy_row_hash,
    normalise_payload,
    row_hash,
    seal_payload,
)

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
KEY = derive_audit_key("test-secret-key-not-for-production-0123456789").encode()
OTHER_KEY = b"another-key-that-is-long-enough-0123456789"


def event(seq: int, prev: str) -> dict:
    return {
        "seq": seq,
        "occurred_at": T0 + timedelta(minutes=seq),
        "actor": "user:1",
        "action": "batch.verified",
        "subject_type": "batch",
        "subject_id": str(seq),
        "before": {"state": "compounded"},
        "after": {"state": "verified", "n": seq},
        "reason": "",
        "request_id": "r" * 8,
        "prev_hash": prev,
    }


def make_chain(n: int, *, start: list[dict] | None = None, legacy: bool = False) -> list[dict]:
    rows = list(start or [])
    prev = rows[-1]["row_hash"] if rows else GENESIS_HASH
    for seq in range(len(rows) + 1, len(rows) + n + 1):
        row = event(seq, prev)
        row["row_hash"] = prev = legacy_row_hash(row) if legacy else row_hash(row, KEY)
        rows.append(row)
    return rows


def seal(rows: list[dict]) -> list[dict]:
    """What `infusion audit seal-legacy` appends after rows hashed with plain sha256."""
    row = dict(event(len(rows) + 1, rows[-1]["row_hash"]))
    row.update(
        actor="system",
        action=SEAL_ACTION,
        subject_type=SEAL_SUBJECT_TYPE,
        subject_id="chain",
        before=None,
        after=seal_payload(len(rows)),
    )
    row["row_hash"] = row_hash(row, KEY)
    return [*rows, row]


def verify(
    rows: list[dict],
    *,
    key: bytes = KEY,
    anchor: Anchor | None = None,
    now: datetime = T0 + timedelta(minutes=5),
):
    verifier = ChainVerifier(key, anchor=anchor, now=now)
    verifier.feed(rows)
    return verifier.report()


def test_an_untouched_chain_is_intact():
    report = verify(make_chain(5))
    assert (report.ok, report.checked) == (True, 5)
    assert report.sentence() == (
        "audit trail intact: 5 event(s) checked; the outside anchor is not yet written (the "
        "trail is younger than 10 minutes)"
    )


def test_an_empty_chain_is_intact():
    assert verify([]).sentence() == (
        "audit trail intact: 0 event(s) checked; the trail is empty, so there is no outside "
        "anchor yet"
    )


def test_an_altered_reason_names_its_row():
    rows = make_chain(4)
    rows[2]["reason"] = "edited later"
    report = verify(rows)
    assert (report.ok, report.seq, report.checked) == (False, 3, 2)
    assert report.sentence() == (
        "audit trail broken at seq 3: row 3 was altered (its contents do not match its hash)"
    )


def test_a_removed_row_is_named_as_missing():
    rows = make_chain(4)
    del rows[1]
    report = verify(rows)
    assert (report.seq, report.problem) == (2, "row 2 is missing (next row is 3)")


def test_a_rehashed_row_still_breaks_the_link_to_the_next():
    rows = make_chain(3)
    rows[0]["actor"] = "user:2"
    rows[0]["row_hash"] = row_hash(rows[0], KEY)  # a forger with the key re-hashed this row
    report = verify(rows)
    assert (report.seq, report.problem) == (2, "row 2 does not follow row 1 (prev_hash differs)")


def test_timestamps_hash_the_same_in_any_time_zone():
    [row] = make_chain(1)
    shifted = dict(
        row,
        occurred_at=row["occurred_at"].astimezone(
            __import__("zoneinfo").ZoneInfo("America/Chicago")
        ),
    )
    assert row_hash(shifted, KEY) == row["row_hash"]


def test_payloads_are_normalised_as_jsonb_reads_them_back():
    assert normalise_payload({"at": T0, "n": 1.5, "b": None}) == {
        "at": "2026-03-01 09:30:00+00:00",
        "n": 1.5,
        "b": None,
    }
    assert normalise_payload(None) is None


FIELDS = ["actor", "action", "subject_type", "subject_id", "reason", "request_id"]


@given(
    n=st.integers(min_value=1, max_value=8),
    data=st.data(),
    field=st.sampled_from(FIELDS),
    new_value=st.text(min_size=1, max_size=20),
)
def test_any_change_to_any_field_is_found_at_that_row(n, data, field, new_value):
    rows = make_chain(n)
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    if rows[index][field] == new_value:
        new_value += "x"
    rows[index][field] = new_value
    report = verify(rows)
    assert (report.ok, report.seq, report.checked) == (False, index + 1, index)


@given(n=st.integers(min_value=2, max_value=8), data=st.data())
def test_removing_any_row_but_the_last_is_found(n, data):
    rows = make_chain(n)
    index = data.draw(st.integers(min_value=0, max_value=n - 2))
    del rows[index]
    report = verify(rows)
    assert (report.ok, report.seq) == (False, index + 1)


# ---------------------------------------------------------------- the key


def test_an_edit_rehashed_with_plain_sha256_is_found():
    # What a DBA without the key can do: edit a row, then re-hash it and every later row.
    rows = make_chain(4)
    rows[1]["reason"] = "nothing to see"
    prev = rows[0]["row_hash"]
    for row in rows[1:]:
        row["prev_hash"] = prev
        row["row_hash"] = prev = legacy_row_hash(row)
    report = verify(rows)
    assert (report.ok, report.seq, report.checked) == (False, 2, 1)
    assert report.problem == "row 2 was altered (its contents do not match its hash)"


def test_a_chain_rewritten_entirely_with_plain_sha256_is_refused():
    rows = make_chain(3, legacy=True)
    report = verify(rows)
    assert (report.ok, report.seq, report.checked) == (False, 4, 3)
    assert report.problem == (
        "rows 1 to 3 carry the old unkeyed hash and no keyed seal follows them (anyone with "
        "database access could have written them)"
    )


def test_a_chain_hashed_with_another_key_is_refused():
    rows = make_chain(2)
    report = verify(rows, key=OTHER_KEY)
    assert (report.ok, report.seq, report.problem) == (
        False,
        1,
        "row 1 was altered (its contents do not match its hash)",
    )


def test_the_hash_is_an_hmac_of_the_row_not_a_plain_digest():
    [row] = make_chain(1)
    assert row["row_hash"] != legacy_row_hash(row)
    assert row_hash(row, KEY) != row_hash(row, OTHER_KEY)
    assert len(row["row_hash"]) == 64


def test_a_short_key_is_refused():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        row_hash(make_chain(1)[0], b"short")


def test_the_derived_key_is_stable_and_not_the_secret_itself():
    secret = "s" * 40
    assert derive_audit_key(secret) == derive_audit_key(secret)
    assert derive_audit_key(secret) != derive_audit_key("t" * 40)
    assert secret not in derive_audit_key(secret)
    assert len(derive_audit_key(secret)) == 64


# ---------------------------------------------------------------- legacy rows and the seal


def test_legacy_rows_closed_by_a_keyed_seal_verify():
    rows = make_chain(2, start=seal(make_chain(3, legacy=True)))
    report = verify(rows)
    assert (report.ok, report.checked) == (True, 6)


def test_an_edited_legacy_row_under_a_seal_is_found():
    rows = make_chain(1, start=seal(make_chain(3, legacy=True)))
    rows[1]["reason"] = "edited"
    rows[1]["row_hash"] = legacy_row_hash(rows[1])  # re-hashed the old way
    report = verify(rows)
    assert (report.ok, report.seq, report.problem) == (
        False,
        3,
        "row 3 does not follow row 2 (prev_hash differs)",
    )


def test_a_seal_naming_the_wrong_number_of_legacy_rows_is_refused():
    rows = seal(make_chain(3, legacy=True))
    rows[3]["after"] = seal_payload(2)
    rows[3]["row_hash"] = row_hash(rows[3], KEY)
    report = verify(rows)
    assert (report.ok, report.seq, report.problem) == (
        False,
        4,
        "row 4 follows unkeyed rows but is not their seal",
    )


def test_unkeyed_rows_after_the_seal_are_refused():
    rows = make_chain(1, start=seal(make_chain(2, legacy=True)), legacy=True)
    report = verify(rows)
    assert (report.ok, report.seq, report.problem) == (
        False,
        4,
        "row 4 was altered (its contents do not match its hash)",
    )


# ---------------------------------------------------------------- the outside anchor


def anchor_of(row: dict) -> Anchor:
    return Anchor(seq=row["seq"], row_hash=row["row_hash"], at=T0 + timedelta(hours=1))


def test_a_chain_that_reaches_its_anchor_is_intact():
    rows = make_chain(5)
    report = verify(rows, anchor=anchor_of(rows[3]))
    assert (report.ok, report.checked, report.anchor) == (True, 5, anchor_of(rows[3]))
    assert report.sentence() == (
        "audit trail intact: 5 event(s) checked; matches the outside anchor of seq 4"
    )


def test_deleting_the_newest_rows_is_caught_by_the_anchor():
    rows = make_chain(5)
    anchor = anchor_of(rows[4])
    report = verify(rows[:3], anchor=anchor)
    assert (report.ok, report.seq, report.checked) == (False, 4, 3)
    assert report.sentence() == (
        "audit trail broken at seq 4: rows 4 to 5 are missing (the outside anchor of "
        "2026-03-01T10:30:00.000000+00:00 records seq 5; the trail ends at seq 3)"
    )


def test_a_row_that_differs_from_its_anchor_is_named():
    rows = make_chain(3)
    anchor = Anchor(seq=2, row_hash="f" * 64, at=T0)
    report = verify(rows, anchor=anchor)
    assert (report.ok, report.seq, report.problem) == (
        False,
        2,
        "row 2 does not match the outside anchor of 2026-03-01T09:30:00.000000+00:00",
    )


def test_a_broken_chain_is_reported_before_the_anchor():
    rows = make_chain(3)
    rows[0]["actor"] = "user:9"
    report = verify(rows, anchor=anchor_of(rows[2]))
    assert (report.seq, report.problem) == (
        1,
        "row 1 was altered (its contents do not match its hash)",
    )


def test_an_anchor_line_round_trips():
    anchor = Anchor(seq=12, row_hash="a" * 64, at=T0)
    assert anchor.line() == (
        '{"at":"2026-03-01T09:30:00.000000+00:00","row_hash":"' + "a" * 64 + '","seq":12}'
    )
    assert Anchor.parse(anchor.line()) == anchor


def test_a_line_that_is_not_an_anchor_is_refused():
    for line in (
        "",
        "{",
        "[]",
        '{"seq": 0, "row_hash": "a", "at": "2026-03-01T09:30:00+00:00"}',
        '{"seq": "1", "row_hash": "a", "at": "2026-03-01T09:30:00+00:00"}',
        '{"seq": 1, "row_hash": "a", "at": "2026-03-01T09:30:00"}',
        '{"seq": 1, "row_hash": "a"}',
    ):
        with pytest.raises(ValueError, match="not an audit anchor line"):
            Anchor.parse(line)


def test_a_report_that_failed_its_anchor_names_that_anchor():
    rows = make_chain(3)
    for anchor in (anchor_of(rows[2]), Anchor(seq=2, row_hash="f" * 64, at=T0)):
        report = verify(rows[:2] if anchor.seq == 3 else rows, anchor=anchor)
        assert (report.ok, report.anchor) == (False, anchor)


# ------------------------------------------------------ no anchor where there should be one


def test_a_trail_older_than_ten_anchor_runs_without_an_anchor_is_not_verified():
    rows = make_chain(3)  # the first event at T0 + 1 min
    report = verify(rows, now=T0 + timedelta(minutes=11))
    assert (report.ok, report.checked, report.seq, report.anchor_gap) == (False, 3, None, "missing")
    text = (
        "audit trail not verified: the outside anchor{} is missing; the newest rows cannot be "
        "checked (the trail holds events since 2026-03-01T09:31:00.000000+00:00, which the "
        "anchor job should have anchored within 10 minutes)"
    )
    assert report.sentence() == text.format("")
    assert report.sentence("/srv/anchor.jsonl") == text.format(" /srv/anchor.jsonl")


def test_a_trail_younger_than_ten_minutes_passes_and_says_its_anchor_is_not_yet_written():
    report = verify(make_chain(3), now=T0 + timedelta(minutes=10, seconds=59))
    assert (report.ok, report.anchor_gap) == (True, "pending")
    assert report.sentence("/srv/a") == (
        "audit trail intact: 3 event(s) checked; the outside anchor /srv/a is not yet written "
        "(the trail is younger than 10 minutes)"
    )


def test_the_age_that_needs_an_anchor_is_ten_minutes():
    assert timedelta(minutes=10) == ANCHOR_EXPECTED_WITHIN
    assert not verify(make_chain(1), now=T0 + timedelta(minutes=11)).ok


# ------------------------------------------------------------ which trails may be sealed


def seal_refusal(rows: list[dict]) -> str | None:
    check = LegacySealCheck(KEY)
    check.feed(rows)
    return check.refusal()


def test_a_trail_written_entirely_before_the_key_may_be_sealed():
    check = LegacySealCheck(KEY)
    assert check.feed(make_chain(4, legacy=True))
    assert (check.refusal(), check.legacy_rows) == (None, 4)


def test_an_empty_trail_has_nothing_to_seal():
    assert seal_refusal([]) == (
        "the audit trail is empty: there is nothing to seal (new events are keyed)"
    )


def test_a_trail_with_a_keyed_row_is_never_sealed():
    # A keyed trail whose newest rows were rewritten in sha256 by someone without the key.
    rows = make_chain(2, start=make_chain(2), legacy=True)
    assert seal_refusal(rows) == (
        "the audit trail was keyed already (row 1 carries a keyed hash); only a trail written "
        "entirely before the key can be sealed"
    )


def test_a_trail_holding_a_seal_is_never_sealed_again():
    rows = seal(make_chain(2, legacy=True))
    rows[2]["row_hash"] = legacy_row_hash(rows[2])  # the seal re-hashed without the key
    assert seal_refusal(rows) == (
        "the audit trail was keyed already (row 3 is its audit.chain_keyed seal); it cannot be "
        "sealed again"
    )


def test_a_broken_legacy_trail_is_not_sealed():
    rows = make_chain(3, legacy=True)
    rows[1]["reason"] = "edited"
    assert seal_refusal(rows) == (
        "the audit trail cannot be sealed, it is broken at seq 2: row 2 was altered (its "
        "contents do not match its hash)"
    )
