"""Logins in parallel, against the served app: the limit holds under a burst, one address cannot
spray guesses over many usernames, and argon2 never holds a database connection."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import pytest

from core import db
from core.identity.sign_in_events import APPLICATION_NAME
from core.identity.throttle import Throttle
from tests.api.test_auth_support import (
    PASSWORD,
    audit_events,
    login,
    make_user,
    set_cookies,
    without_request_id,
)
from tests.fixtures import ServedApp, serve_app

SESSION_KEYS = "infusion:session*"
WINDOW_SECONDS = 15 * 60  # INFUSION_LOGIN_LOCKOUT_MINUTES defaults to 15


async def wait_for_count(redis, key: str, count: int) -> None:
    deadline = time.monotonic() + 10
    while int(await redis.get(key) or 0) < count:
        assert time.monotonic() < deadline, f"{key} never reached {count}"
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------- one username, in parallel


async def test_a_burst_of_guesses_is_verified_only_up_to_the_limit(http, redis):
    """20 wrong guesses at once: 5 (INFUSION_LOGIN_MAX_FAILURES) are verified, 15 refused
    unverified; the right password sent inside the burst, after the limit, is refused too."""
    user = await make_user("tess", "technician")
    near = {"x-forwarded-for": "10.4.4.4"}
    key = Throttle(1, 1).key("tess", "10.4.4.4")
    guesses = [
        asyncio.create_task(login(http, "tess", f"guess number {i:02d}", **near)) for i in range(20)
    ]
    # Every attempt is counted before its password is verified, so the count reaches 20 while
    # the first guesses are still in argon2.
    await wait_for_count(redis, key, 20)

    right = await login(http, "tess", PASSWORD, **near)
    wrong = await asyncio.gather(*guesses)

    assert sorted(response.status_code for response in wrong) == [401] * 5 + [429] * 15
    assert right.status_code == 429
    assert without_request_id(right)["detail"] == (
        "Too many failed logins; try again in 15 minutes."
    )
    assert set_cookies(right) == []
    assert await redis.get(key) == b"21"
    assert await redis.keys(SESSION_KEYS) == []
    # The 5 verified guesses are recorded, and the lockout once, not once per refusal.
    actions = sorted(e["action"] for e in await audit_events())
    assert actions == ["user.sign_in_failed"] * 5 + ["user.sign_in_locked"]
    [row] = await db.fetch("SELECT last_login_at FROM app_user WHERE id = {}", user.id)
    assert row["last_login_at"] is None


# ---------------------------------------------------------------- the database pool


async def page_login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/login", data={"username": username, "password": password})


@pytest.mark.parametrize("through", [login, page_login], ids=["api", "page"])
async def test_a_burst_of_failed_logins_holds_no_database_connection(http, through):
    """20 failed logins at once, against an app with a pool of 10: none waits for argon2 with
    a connection (let alone in a transaction), and /health still finds the database."""
    # Each failure is then recorded in a short transaction of its own, after argon2; those
    # name themselves (or have only just begun), and are not the ones this test looks for.
    idle_in_transaction = (
        "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database()"
        " AND state LIKE 'idle in transaction%'"
        f" AND application_name <> '{APPLICATION_NAME}' AND query <> 'BEGIN;'"
    )
    # Only connections the burst opens count (the served app lives for the whole session).
    earlier = {row["pid"] for row in await db.fetch(idle_in_transaction)}
    logins = [
        asyncio.create_task(through(http, f"nobody.{i:02d}", "not the right password"))
        for i in range(20)
    ]
    in_transaction: list[dict] = []
    health = None
    while not all(task.done() for task in logins):
        in_transaction += [
            row for row in await db.fetch(idle_in_transaction) if row["pid"] not in earlier
        ]
        if health is None:
            health = await http.get("/health")
        await asyncio.sleep(0.02)

    assert [response.status_code for response in await asyncio.gather(*logins)] == [401] * 20
    assert [e["action"] for e in await audit_events()] == ["user.sign_in_failed"] * 20
    assert health is not None
    assert (health.status_code, health.json()["down"]) == (200, []), health.text
    assert in_transaction == []


# ---------------------------------------------------------------- one address, many usernames


@pytest.fixture(scope="module")
def strict_app(database, tmp_path_factory) -> ServedApp:
    """The app with INFUSION_LOGIN_MAX_FAILURES=1: 1 attempt per username and address, and
    10 (CLIENT_FACTOR times that) per address, per window."""
    env = {**os.environ, "INFUSION_LOGIN_MAX_FAILURES": "1"}
    app = serve_app(env, tmp_path_factory.mktemp("strict-app") / "app.log")
    yield app
    app.stop()


@pytest.fixture
async def strict(strict_app, clean_state):
    async with httpx.AsyncClient(base_url=strict_app.url, timeout=30) as client:
        yield client


async def test_one_address_guessing_across_usernames_is_stopped(strict, redis):
    await make_user("tess", "technician")
    spray = {"x-forwarded-for": "10.5.5.5"}

    guesses = [await login(strict, f"user.{i:02d}", "Winter2026!!", **spray) for i in range(10)]
    refused = await login(strict, "tess", PASSWORD, **spray)

    assert [response.status_code for response in guesses] == [401] * 10
    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= WINDOW_SECONDS
    assert without_request_id(refused)["detail"] == (
        "Too many failed logins from this address; try again in 15 minutes."
    )
    assert await redis.get(Throttle(1, 1).client_key("10.5.5.5")) == b"11"
    events = await audit_events()
    assert [e["action"] for e in events] == ["user.sign_in_failed"] * 10 + ["user.sign_in_locked"]
    assert (events[-1]["subject_type"], events[-1]["subject_id"]) == ("client", "10.5.5.5")
    assert events[-1]["after"]["by_address"] is True
    # Someone at another address is not affected.
    assert (
        await login(strict, "tess", PASSWORD, **{"x-forwarded-for": "10.5.5.6"})
    ).status_code == 200


async def test_successful_logins_do_not_use_up_the_address_allowance(strict, redis):
    """A shared workstation where people sign in all day is not locked out by them, and a
    success cannot wipe the address's count of failures either."""
    await make_user("tess", "technician")
    desk = {"x-forwarded-for": "10.6.6.6"}
    client_key = Throttle(1, 1).client_key("10.6.6.6")

    signed_in = [await login(strict, "tess", PASSWORD, **desk) for _ in range(12)]
    assert [response.status_code for response in signed_in] == [200] * 12
    assert await redis.get(client_key) == b"0"

    failed = [await login(strict, f"user.{i:02d}", "Winter2026!!", **desk) for i in range(10)]
    assert [response.status_code for response in failed] == [401] * 10
    assert (await login(strict, "tess", PASSWORD, **desk)).status_code == 429
    assert await redis.get(client_key) == b"11"
