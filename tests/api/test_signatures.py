"""`core.identity.signatures.sign`: the password again, printed name + time + meaning in the
audit trail, its own throttle, people only (real PostgreSQL and Redis)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from core import db
from core.audit.services import record
from core.clock import FixedClock, set_clock
from core.errors import AuthenticationError, RateLimitedError
from core.identity.errors import IdentityPolicyError, SignatureNeedsPersonError
from core.identity.signatures import Meaning, Signature, sign
from core.identity.throttle import SIGNATURE_KEY_PREFIX
from tests.api.test_auth_support import PASSWORD, audit_events, make_user

SIGNED_AT = datetime(2026, 12, 1, 14, 30, 5, tzinfo=UTC)


@dataclass
class Caller:
    id: int
    via: str = "session"


@pytest.fixture
def settings(clean_state):
    return dataclasses.replace(clean_state, signature_max_failures=3)


@pytest.fixture
def fixed_clock():
    clock = FixedClock(SIGNED_AT)
    previous = set_clock(clock)
    yield clock
    set_clock(previous)


async def signature_events() -> list[dict]:
    return [e for e in await audit_events() if e["action"].startswith("signature")]


async def test_the_right_password_records_printed_name_time_and_meaning(
    settings, redis, fixed_clock
):
    priya = await make_user("priya", "pharmacist")

    signature = await sign(
        redis,
        Caller(priya.id),
        password=PASSWORD,
        meaning=Meaning.approved_for_dispatch,
        subject_type="shipment",
        subject_id=42,
        client="10.1.1.1",
        settings=settings,
    )

    assert signature == Signature(
        user_id=priya.id,
        username="priya",
        printed_name="Priya (test)",
        meaning=Meaning.approved_for_dispatch,
        subject_type="shipment",
        subject_id="42",
        signed_at=SIGNED_AT,
    )
    assert signature.audit_seq == 1  # numbered at COMMIT, which sign() has done
    assert await signature_events() == [
        {
            "actor": f"user:{priya.id}",
            "action": "signature",
            "subject_type": "shipment",
            "subject_id": "42",
            "before": None,
            "after": {
                "printed_name": "Priya (test)",
                "username": "priya",
                "meaning": "approved for dispatch",
                "signed_at": "2026-12-01T14:30:05+00:00",
                "client": "10.1.1.1",
            },
            "reason": "",
        }
    ]


async def test_the_signed_act_commits_with_the_signature_or_not_at_all(settings, redis):
    priya = await make_user("priya", "pharmacist")

    async def mark_verified(signature: Signature) -> None:
        await record(
            actor=f"user:{signature.user_id}",
            action="batch.verified",
            subject_type="batch",
            subject_id=signature.subject_id,
            after={"signed_by": signature.printed_name, "meaning": signature.meaning.value},
        )

    async def fails(signature: Signature) -> None:
        await mark_verified(signature)
        raise IdentityPolicyError("The batch changed meanwhile.")

    with pytest.raises(IdentityPolicyError):
        await sign(
            redis, Caller(priya.id), password=PASSWORD, meaning="verified",
            subject_type="batch", subject_id=7, client="c", settings=settings, act=fails,
        )  # fmt: skip
    assert await audit_events() == []

    signature = await sign(
        redis, Caller(priya.id), password=PASSWORD, meaning="verified",
        subject_type="batch", subject_id=7, client="c", settings=settings, act=mark_verified,
    )  # fmt: skip

    assert [(e["action"], e["after"].get("signed_by")) for e in await audit_events()] == [
        ("signature", None),
        ("batch.verified", "Priya (test)"),
    ]
    assert signature.audit_seq == 1


async def test_a_wrong_password_is_a_401_signs_nothing_and_is_audited(settings, redis):
    priya = await make_user("priya", "pharmacist")
    ran = []

    async def act(signature: Signature) -> None:
        ran.append(signature)

    with pytest.raises(AuthenticationError) as refused:
        await sign(
            redis, Caller(priya.id), password="not my password at all",
            meaning=Meaning.disposition_discard, subject_type="excursion", subject_id=3,
            client="10.1.1.1", settings=settings, act=act,
        )  # fmt: skip

    assert (refused.value.status, refused.value.message) == (
        401,
        "The password is not correct; nothing was signed.",
    )
    assert ran == []
    assert [(e["action"], e["after"], e["reason"]) for e in await signature_events()] == [
        (
            "signature.failed",
            {"meaning": "disposition: discard", "client": "10.1.1.1"},
            "wrong password",
        )
    ]


async def test_after_n_wrong_passwords_signing_is_refused_even_with_the_right_one(settings, redis):
    priya = await make_user("priya", "pharmacist")
    args = dict(
        meaning="verified", subject_type="batch", subject_id=1, client="c", settings=settings
    )
    for _ in range(3):
        with pytest.raises(AuthenticationError):
            await sign(redis, Caller(priya.id), password="wrong guess number x", **args)

    with pytest.raises(RateLimitedError) as limited:
        await sign(redis, Caller(priya.id), password=PASSWORD, **args)

    assert limited.value.status == 429
    assert (
        limited.value.message == "Too many wrong passwords when signing; try again in 15 minutes."
    )
    assert 890 <= limited.value.retry_after <= 900
    assert [e["action"] for e in await signature_events()] == ["signature.failed"] * 3
    # Its own counter: the sign-in throttle has not counted these.
    assert await redis.keys("infusion:login-failures*") == []
    assert len(await redis.keys(SIGNATURE_KEY_PREFIX + "*")) == 1


async def test_a_right_password_clears_the_count(settings, redis):
    priya = await make_user("priya", "pharmacist")
    args = dict(
        meaning="verified", subject_type="batch", subject_id=1, client="c", settings=settings
    )
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            await sign(redis, Caller(priya.id), password="wrong guess number x", **args)
    await sign(redis, Caller(priya.id), password=PASSWORD, **args)

    assert await redis.keys(SIGNATURE_KEY_PREFIX + "*") == []


async def test_an_api_token_can_never_sign(settings, redis):
    priya = await make_user("priya", "pharmacist")

    with pytest.raises(SignatureNeedsPersonError) as refused:
        await sign(
            redis, Caller(priya.id, via="token"), password=PASSWORD, meaning="verified",
            subject_type="batch", subject_id=1, client="c", settings=settings,
        )  # fmt: skip

    assert (refused.value.status, refused.value.code, refused.value.message) == (
        403,
        "signature_needs_person",
        "A signature must be given by a person signed in, never with an API token.",
    )
    assert await audit_events() == []
    assert await redis.keys("*") == []  # not even counted: the password was never checked


async def test_an_account_that_cannot_sign_is_refused(settings, redis):
    gone = await make_user("gone", "pharmacist", active=False)
    reset = await make_user("reset", "pharmacist")
    await db.fetch("UPDATE app_user SET must_change_password = true WHERE id = {}", reset.id)

    for user in (gone, reset):
        with pytest.raises(AuthenticationError) as refused:
            await sign(
                redis, Caller(user.id), password=PASSWORD, meaning="verified",
                subject_type="batch", subject_id=1, client="c", settings=settings,
            )  # fmt: skip
        assert refused.value.message == "This account cannot sign now; sign in again."
    assert await audit_events() == []


async def test_an_unknown_meaning_is_refused_before_anything_else(settings, redis):
    priya = await make_user("priya", "pharmacist")

    with pytest.raises(IdentityPolicyError) as refused:
        await sign(
            redis, Caller(priya.id), password=PASSWORD, meaning="looks fine to me",
            subject_type="batch", subject_id=1, client="c", settings=settings,
        )  # fmt: skip

    assert refused.value.message == (
        "Unknown signature meaning 'looks fine to me'; known: 'verified', "
        "'approved for dispatch', 'disposition: discard'."
    )
    assert await audit_events() == []


async def test_sign_refuses_to_run_inside_a_transaction(settings, redis):
    priya = await make_user("priya", "pharmacist")

    with pytest.raises(RuntimeError, match=r"call it before opening core\.db\.transaction"):
        async with db.transaction():
            await sign(
                redis, Caller(priya.id), password=PASSWORD, meaning="verified",
                subject_type="batch", subject_id=1, client="c", settings=settings,
            )  # fmt: skip
