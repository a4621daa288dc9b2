"""core.steps: the claim commits before the outside call, the record commits with our rows."""

from __future__ import annotations

import pytest

from core import db
from core.steps import StepAlreadyRecorded, claim


async def claims() -> list[dict]:
    return await db.fetch(
        "SELECT key, claims, recorded_at IS NOT NULL AS recorded, result::text AS result"
        " FROM job_claim ORDER BY id"
    )


async def test_a_claim_commits_before_the_block_and_a_record_with_its_rows(clean_state):
    async with claim("k1") as step:
        assert (step.first, step.recorded, step.result) == (True, False, None)
        # Committed already: another connection (the test's own pool) sees it.
        assert await claims() == [{"key": "k1", "claims": 1, "recorded": False, "result": None}]
        assert not db.in_transaction()
        async with step.record({"receipt": "R1"}):
            assert db.in_transaction()
    assert await claims() == [
        {"key": "k1", "claims": 1, "recorded": True, "result": '{"receipt": "R1"}'}
    ]
    async with claim("k1") as again:
        assert (again.first, again.recorded, again.result) == (False, True, {"receipt": "R1"})


async def test_a_record_whose_block_fails_leaves_the_claim_for_the_next_run(clean_state):
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with claim("k2") as step, step.record({"receipt": "R2"}):
            raise Boom
    assert await claims() == [{"key": "k2", "claims": 1, "recorded": False, "result": None}]
    async with claim("k2") as step:
        assert (step.first, step.recorded) == (False, False)  # reconcile, then record
        async with step.record({"receipt": "R2"}):
            pass
    assert (await claims())[0]["claims"] == 2


async def test_a_second_record_of_the_same_claim_is_refused_and_rolled_back(clean_state):
    await db.fetch("CREATE TABLE IF NOT EXISTS test_step_row (note text)")
    await db.fetch("TRUNCATE test_step_row")
    with pytest.raises(StepAlreadyRecorded, match="already recorded"):
        async with claim("k3") as first:
            # A concurrent run of the same work claims and records first.
            async with claim("k3") as second, second.record({"by": "second"}):
                pass
            async with first.record({"by": "first"}):
                await db.fetch("INSERT INTO test_step_row VALUES ('first')")
    assert (await claims())[0]["result"] == '{"by": "second"}'
    assert await db.fetch("SELECT note FROM test_step_row") == []


async def test_steps_refuse_an_open_transaction_and_a_claim_left_unrecorded(clean_state):
    with pytest.raises(RuntimeError, match="outside any transaction"):
        async with db.transaction(), claim("k4"):
            pass
    assert await claims() == []
    with pytest.raises(RuntimeError, match="claimed but its result was not recorded"):
        async with claim("k5"):
            pass
    with pytest.raises(ValueError, match="1 to 255 characters"):
        async with claim(""):
            pass
