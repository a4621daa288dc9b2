"""Electronic signatures (21 CFR Part 11 §11.50, §11.100, §11.200).

    signature = await sign(redis, request.user, password=..., meaning=Meaning.verified,
                           subject_type="batch", subject_id=batch.id, client=address,
                           settings=settings, act=mark_verified)

What the rules ask, and how:
- §11.50: a signed record shows the signer's printed name, the date and time, and the meaning
  of the signature. The audit event (action "signature") carries all three, with the
  username, and is hash-chained with the rest of the trail (core.audit), so a signature
  cannot be excised or copied onto another record without `infusion audit verify` noticing.
  The printed name is the display name *at the time of signing*: renaming an account later
  does not rewrite what was signed.
- §11.200(a): a signature without biometrics uses two components, an identification code and
  a password. The session identifies the person; the password is asked for again at every
  signing, never remembered, so walking up to a signed-in console is not enough.
- §11.100 / §11.200(a)(3): only the genuine owner. Signing is for people only: an API token
  acts for an integration, not a person, and is refused (SignatureNeedsPersonError, 403).
- §11.300(d): attempts at unauthorised use are detected: wrong passwords are counted per person
  (their own throttle, not the sign-in one: INFUSION_SIGNATURE_MAX_FAILURES within
  INFUSION_SIGNATURE_LOCKOUT_MINUTES), each is audited ("signature.failed") and logged, and
  past the limit signing is refused (429) even with the right password.

The password is checked with argon2 while no database connection is held (like sign-in), so
`sign` must be called with no transaction open. It then opens the transaction itself, checks
the account did not change meanwhile, writes the signature event and runs `act` (the signed
state change) in that same transaction: the signature and what it signs commit together or
not at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from redis.asyncio import Redis

from core import db
from core.audit.services import PendingEvent, record
from core.clock import utcnow
from core.errors import AuthenticationError, RateLimitedError
from core.identity.errors import IdentityPolicyError, SignatureNeedsPersonError
from core.identity.passwords import verify_password_async
from core.identity.tables import User
from core.identity.throttle import SIGNATURE_KEY_PREFIX, Throttle
from core.logging import get_logger
from core.settings import Settings

log = get_logger(__name__)

WRONG_PASSWORD = "The password is not correct; nothing was signed."  # noqa: S105  (a sentence)
NOT_A_PERSON = "A signature must be given by a person signed in, never with an API token."
CANNOT_SIGN = "This account cannot sign now; sign in again."
SIGNATURE_ACTION = "signature"


class Meaning(StrEnum):
    """What a signature means, shown to the signer before they sign and recorded with it
    (§11.50(a)(3)). A closed set: a new kind of signature is added here, with its words."""

    verified = "verified"
    approved_for_dispatch = "approved for dispatch"
    disposition_discard = "disposition: discard"


@dataclass(frozen=True)
class Signature:
    """One recorded signature: who (id, username, printed name), when, what it means, and on
    what; `audit_seq` is its event's place in the audit trail, known once the transaction has
    committed (core.audit numbers events at COMMIT), so after `sign` returns."""

    user_id: int
    username: str
    printed_name: str
    meaning: Meaning
    subject_type: str
    subject_id: str
    signed_at: datetime
    audit_event: PendingEvent | None = field(default=None, compare=False, repr=False)

    @property
    def audit_seq(self) -> int | None:
        return self.audit_event.seq if self.audit_event is not None else None

    def manifestation(self) -> dict[str, Any]:
        """What §11.50 asks a signed record to show, as the audit event stores it."""
        return {
            "printed_name": self.printed_name,
            "username": self.username,
            "meaning": self.meaning.value,
            # ISO 8601 in UTC, spelled out: the record must say when without interpretation.
            "signed_at": self.signed_at.isoformat(),
        }


class Signer(Protocol):
    """Who asks to sign: the signed-in caller (core.web.principal.AuthenticatedUser fits)."""

    @property
    def id(self) -> int: ...

    @property
    def via(self) -> str: ...


def signature_throttle(settings: Settings) -> Throttle:
    # Per person, not per address: a signature is made by a known account, and it is that
    # account's password being guessed, from wherever.
    return Throttle(
        settings.signature_max_failures,
        settings.signature_lockout_minutes * 60,
        prefix=SIGNATURE_KEY_PREFIX,
        client_prefix=None,
    )


def meaning_of(raw: Meaning | str) -> Meaning:
    try:
        return Meaning(raw)
    except ValueError:
        known = ", ".join(repr(m.value) for m in Meaning)
        raise IdentityPolicyError(f"Unknown signature meaning {raw!r}; known: {known}.") from None


async def sign(
    redis: Redis,
    signer: Signer,
    *,
    password: str,
    meaning: Meaning | str,
    subject_type: str,
    subject_id: str | int,
    client: str,
    settings: Settings,
    act: Callable[[Signature], Awaitable[Any]] | None = None,
) -> Signature:
    """Ask `signer` for their password again and record their signature on the subject.

    Call with no transaction open (argon2 holds no pooled connection). Raises
    SignatureNeedsPersonError (403) for a token, AuthenticationError (401) for a wrong
    password, RateLimitedError (429) past the limit; nothing is signed then, and `act` does
    not run.
    """
    if db.in_transaction():
        raise RuntimeError(
            "sign() verifies a password: call it before opening core.db.transaction(); it "
            "opens its own and runs `act` in it"
        )
    config = settings
    what = meaning_of(meaning)
    if not subject_type:
        raise ValueError("a signature needs a subject type")
    if signer.via != "session":
        raise SignatureNeedsPersonError(NOT_A_PERSON)
    # One short read: the pooled connection goes back before argon2 starts.
    user = await User.objects().where(User.id == signer.id).first()
    if user is None or not user.is_active or user.must_change_password:
        raise AuthenticationError(CANNOT_SIGN)

    throttle = signature_throttle(config)
    key = str(user.id)
    refusal = await throttle.attempt(redis, key, "")
    if refusal is not None:
        minutes = max(1, -(-refusal.wait_seconds // 60))
        log.warning("signature.refused_locked", user_id=user.id)
        raise RateLimitedError(
            f"Too many wrong passwords when signing; try again in {minutes} "
            f"minute{'s' if minutes > 1 else ''}.",
            retry_after=refusal.wait_seconds,
        )
    if not await verify_password_async(user.password_hash, password):
        log.warning("signature.failed", user_id=user.id, meaning=what.value, client=client)
        async with db.transaction():
            await record(
                actor=f"user:{user.id}",
                action="signature.failed",
                subject_type=subject_type,
                subject_id=subject_id,
                after={"meaning": what.value, "client": client},
                reason="wrong password",
            )
        raise AuthenticationError(WRONG_PASSWORD)
    await throttle.succeeded(redis, key, "")

    async with db.transaction():
        # The account as it is now, locked until COMMIT: a password change, reset or
        # deactivation between the check and here must not let the signature through.
        current = await User.objects().where(User.id == user.id).lock_rows("SHARE").first()
        if (
            current is None
            or not current.is_active
            or current.password_hash != user.password_hash
            or current.credentials_changed_at != user.credentials_changed_at
        ):
            raise AuthenticationError(CANNOT_SIGN)
        signed_at = utcnow()
        signature = Signature(
            user_id=current.id,
            username=current.username,
            printed_name=current.display_name,
            meaning=what,
            subject_type=subject_type,
            subject_id=str(subject_id),
            signed_at=signed_at,
        )
        event = await record(
            actor=f"user:{current.id}",
            action=SIGNATURE_ACTION,
            subject_type=subject_type,
            subject_id=subject_id,
            after={**signature.manifestation(), "client": client},
        )
        signature = dataclasses.replace(signature, audit_event=event)
        if act is not None:
            await act(signature)
    return signature
