"""The audit hash chain finds any altered, removed or re-linked row, and names it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from core.audit.model import GENESIS_HASH, ChainVerifier, normalise_payload, row_hash

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def make_chain(n: int) -> list[dict]:
    rows, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        row = {
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
        row["row_hash"] = prev = row_hash(row)
        rows.append(row)
    return rows


def verify(rows: list[dict]):
    verifier = ChainVerifier()
    verifier.feed(rows)
    return verifier.report()


def test_an_untouched_chain_is_intact():
    report = verify(make_chain(5))
    assert (report.ok, report.checked) == (True, 5)
    assert report.sentence() == "audit trail intact: 5 event(s) checked"


def test_an_empty_chain_is_intact():
    assert verify([]).sentence() == "audit trail intact: 0 event(s) checked"


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
    rows[0]["row_hash"] = row_hash(rows[0])  # the forger recomputed this row's hash
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
    assert row_hash(shifted) == row["row_hash"]


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
