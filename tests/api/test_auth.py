"""Logins, sessions and the login rate limit, against the served app (real PostgreSQL + Redis)."""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx
import pytest

from core import db
from core.audit.keys import chain_key
from core.identity.passwords import verify_password
from core.identity.sign_in_events import unknown_username_marker
from core.identity.tables import User
from tests.api.test_auth_support import (
    PASSWORD,
    SESSION_COOKIE,
    audit_events,
    cookie_value,
    logged_in_client,
    login,
    make_user,
    session_cookie_header,
    set_cookies,
    without_request_id,
)

SESSION_KEYS = "infusion:session*"
WRONG = {
    "type": "about:blank#not_authenticated",
    "title": "Not authenticated",
    "status": 401,
    "detail": "Wrong username or password.",
    "code": "not_authenticated",
    "instance": "/api/auth/login",
}


# ---------------------------------------------------------------- wrong credentials


async def test_wrong_password_and_unknown_user_get_identical_401s(http):
    await make_user("tess", "technician")

    wrong_password = await login(http, "tess", "not the right password")
    unknown_user = await login(http, "nobody.here", "not the right password")

    assert wrong_password.status_code == unknown_user.status_code == 401
    assert without_request_id(wrong_password) == without_request_id(unknown_user) == WRONG
    for response in (wrong_password, unknown_user):
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == 'Bearer realm="infusion"'
        assert set_cookies(response) == []
    # Both failures are recorded; the unknown name only as a keyed marker, never as typed.
    user = await User.objects().where(User.username == "tess").first()
    assert await audit_events() == [
        {
            "actor": "anonymous",
            "action": "user.sign_in_failed",
            "subject_type": "user",
            "subject_id": str(user.id),
            "before": None,
            "after": {"username": "tess", "client": "127.0.0.1", "reason": "wrong_password"},
            "reason": "",
        },
        {
            "actor": "anonymous",
            "action": "user.sign_in_failed",
            "subject_type": "sign_in",
            "subject_id": unknown_username_marker("nobody.here", chain_key()),
            "before": None,
            "after": {"client": "127.0.0.1", "reason": "unknown_username"},
            "reason": "",
        },
    ]


async def test_inactive_user_with_right_password_gets_the_same_401(http):
    await make_user("gone", "packer", active=False)

    response = await login(http, "gone")

    assert response.status_code == 401
    assert without_request_id(response) == WRONG
    assert set_cookies(response) == []
    [event] = await audit_events()
    assert (event["action"], event["after"]) == (
        "user.sign_in_failed",
        {"username": "gone", "client": "127.0.0.1", "reason": "inactive_account"},
    )


async def test_unknown_user_costs_as_much_time_as_a_wrong_password(http):
    """No timing oracle: an unknown username is verified against a dummy argon2 hash."""
    await make_user("tess", "technician")

    async def median_seconds(username: str, client: str) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            response = await login(
                http, username, "not the right password", **{"x-forwarded-for": client}
            )
            times.append(time.perf_counter() - started)
            assert response.status_code == 401
        return statistics.median(times)

    await median_seconds("warm.up", "10.9.9.9")  # first dummy hash is computed once
    known = await median_seconds("tess", "10.9.9.1")
    unknown = await median_seconds("nobody.here", "10.9.9.2")
    # argon2 dominates both (≈0.15 s); without the dummy hash `unknown` would be a few ms.
    assert unknown > 0.5 * known, (known, unknown)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"username": "tess"},
            "Invalid request: data: Object missing required field `password`",
        ),
        (
            {"username": "tess", "password": 12},
            "Invalid request: password: Expected `str`, got `int`",
        ),
        (
            {"username": "tess", "password": "x" * 1025},
            "Invalid request: password: Expected `str` of length <= 1024",
        ),
    ],
)
async def test_malformed_login_is_a_400_problem_not_a_500(http, body, detail):
    response = await http.post("/api/auth/login", json=body)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = without_request_id(response)
    assert (problem["code"], problem["detail"]) == ("invalid_request", detail)


async def test_login_body_that_is_not_json_is_a_400(http):
    response = await http.post(
        "/api/auth/login", content=b"username=tess", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    problem = without_request_id(response)
    assert (problem["code"], problem["detail"]) == (
        "bad_request",
        "JSON is malformed: invalid character (byte 0)",
    )


@pytest.mark.parametrize(
    "content_type",
    [
        # What a <form enctype="text/plain"> on another site sends: no CORS preflight needed.
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
    ],
)
async def test_a_login_not_sent_as_json_is_refused_before_anything_is_checked(
    http, redis, content_type
):
    """Login CSRF: another site's form cannot sign this browser into the attacker's account,
    even though the body is valid JSON and the password is right."""
    await make_user("mallory", "technician")
    body = b'{"username": "mallory", "password": "violet kettle under the stairs", "x": "="}'
    headers = {} if content_type is None else {"content-type": content_type}

    response = await http.post("/api/auth/login", content=body, headers=headers)

    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert without_request_id(response) == {
        "type": "about:blank#unsupported_media_type",
        "title": "Unsupported media type",
        "status": 415,
        "detail": "Send the request body as JSON, with the header Content-Type: application/json.",
        "code": "unsupported_media_type",
        "instance": "/api/auth/login",
    }
    assert set_cookies(response) == []
    assert await redis.keys("*") == []  # no session, and not even a counted attempt
    assert await audit_events() == []


async def test_json_with_a_charset_is_json(http):
    await make_user("tess", "technician")

    response = await http.post(
        "/api/auth/login",
        content=b'{"username": "tess", "password": "violet kettle under the stairs"}',
        headers={"content-type": "Application/JSON; charset=utf-8"},
    )

    assert response.status_code == 200


# ---------------------------------------------------------------- sessions


async def test_login_answers_with_the_user_and_starts_a_session(http):
    user = await make_user("phil", "pharmacist", "admin")

    response = await login(http, "PHIL ")  # usernames are matched in lower case

    assert response.status_code == 200
    assert response.json() == {
        "id": user.id,
        "username": "phil",
        "display_name": "Phil (test)",
        "roles": ["pharmacist", "admin"],
        "via": "session",
        "token_id": None,
        "must_change_password": False,
    }
    me = await http.get("/api/auth/me")
    assert me.status_code == 200
    assert me.json() == response.json()
    [event] = await audit_events()
    assert (event["actor"], event["action"], event["subject_id"]) == (
        f"user:{user.id}",
        "user.logged_in",
        str(user.id),
    )
    [row] = await db.fetch("SELECT last_login_at FROM app_user WHERE id = {}", user.id)
    assert row["last_login_at"] is not None


async def test_no_credentials_on_a_guarded_route_is_401(http):
    response = await http.get("/api/auth/me")

    assert response.status_code == 401
    assert without_request_id(response) == {
        "type": "about:blank#not_authenticated",
        "title": "Not authenticated",
        "status": 401,
        "detail": "Log in first, or send an API token (Authorization: Bearer inf_...).",
        "code": "not_authenticated",
        "instance": "/api/auth/me",
    }


async def test_session_id_changes_at_login(http, redis):
    """Session fixation: an id planted before login (or the previous session's) is never kept."""
    await make_user("tess", "technician")
    await make_user("paco", "packer")
    http.cookies.set(SESSION_COOKIE, "a" * 64)

    first = await login(http, "tess")
    first_id = cookie_value(session_cookie_header(first))
    assert first_id != "a" * 64
    assert len(first_id) == 64

    second = await login(http, "paco")
    second_id = cookie_value(session_cookie_header(second))
    assert second_id not in (first_id, "a" * 64)
    # The previous session is gone from Redis, not merely replaced in this browser.
    assert await redis.keys(SESSION_KEYS) == [f"infusion:session:{second_id}".encode()]
    async with httpx.AsyncClient(base_url=str(http.base_url)) as other:
        other.cookies.set(SESSION_COOKIE, first_id)
        assert (await other.get("/api/auth/me")).status_code == 401
    assert (await http.get("/api/auth/me")).json()["username"] == "paco"


async def test_unknown_session_cookie_is_cleared_not_adopted(http, redis):
    http.cookies.set(SESSION_COOKIE, "b" * 64)

    # /health skips the session middleware altogether (it never looks at its caller): it
    # neither clears nor renews a cookie. A page does both.
    assert set_cookies(await http.get("/health")) == []
    response = await http.get("/login")

    assert response.status_code == 200
    header = session_cookie_header(response)
    assert cookie_value(header) in ('""', "")
    assert "max-age=0" in header.lower()
    assert await redis.keys(SESSION_KEYS) == []


async def test_anonymous_requests_set_no_cookie_and_store_nothing(http, redis):
    for path in ("/health", "/api/auth/me", "/schema/openapi.json"):
        response = await http.get(path)
        assert set_cookies(response) == [], path
    assert await redis.keys(SESSION_KEYS) == []


async def test_logout_deletes_the_session_server_side(served_app, http, redis):
    await make_user("tess", "technician")
    response = await login(http, "tess")
    old_id = cookie_value(session_cookie_header(response))
    assert len(await redis.keys(SESSION_KEYS)) == 1

    logout = await http.post("/api/auth/logout")

    assert logout.status_code == 204
    assert "max-age=0" in session_cookie_header(logout).lower()
    assert await redis.keys(SESSION_KEYS) == []
    # Someone who kept a copy of the cookie cannot use it any more.
    async with httpx.AsyncClient(base_url=served_app.url) as replay:
        replay.cookies.set(SESSION_COOKIE, old_id)
        assert (await replay.get("/api/auth/me")).status_code == 401
    assert [e["action"] for e in await audit_events()] == ["user.logged_in", "user.logged_out"]


async def test_logout_without_a_session_is_204_and_records_nothing(http):
    response = await http.post("/api/auth/logout")

    assert response.status_code == 204
    assert set_cookies(response) == []
    assert await audit_events() == []


async def test_deactivating_a_user_ends_their_session_on_the_next_request(http, redis):
    user = await make_user("tess", "technician")
    await login(http, "tess")
    await db.fetch("UPDATE app_user SET is_active = false WHERE id = {}", user.id)

    response = await http.get("/api/auth/me")

    assert response.status_code == 401
    assert await redis.keys(SESSION_KEYS) == []


async def test_changing_own_password_ends_other_sessions_but_keeps_this_one(served_app, http):
    user = await make_user("tess", "technician")
    other = await logged_in_client(served_app.url, "tess")
    await login(http, "tess")
    new_password = "a brand new passphrase"

    response = await http.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "new_password": new_password},
    )

    assert response.status_code == 204
    assert (await http.get("/api/auth/me")).status_code == 200
    assert (await other.get("/api/auth/me")).status_code == 401
    await other.aclose()
    assert (await login(http, "tess", PASSWORD)).status_code == 401
    assert (await login(http, "tess", new_password)).status_code == 200
    events = [(e["actor"], e["action"]) for e in await audit_events()]
    actor = f"user:{user.id}"
    assert events == [
        (actor, "user.logged_in"),
        (actor, "user.logged_in"),
        (actor, "user.password_set"),
        ("anonymous", "user.sign_in_failed"),  # the old password, tried once more
        (actor, "user.logged_in"),
    ]


async def test_changing_own_password_refuses_a_wrong_current_password(http):
    user = await make_user("tess", "technician")
    await login(http, "tess")
    events_before = await audit_events()

    response = await http.post(
        "/api/auth/password",
        json={"current_password": "not my password!", "new_password": "a brand new passphrase"},
    )

    assert response.status_code == 422
    assert response.json()["detail"] == "The current password is not correct."
    [failed] = (await audit_events())[len(events_before) :]
    assert (
        failed["actor"],
        failed["action"],
        failed["subject_type"],
        failed["subject_id"],
        failed["before"],
        failed["after"],
        failed["reason"],
    ) == (
        f"user:{user.id}",
        "user.password_change_failed",
        "user",
        str(user.id),
        None,
        {"client": "127.0.0.1"},
        "wrong current password",
    )
    assert "not my password!" not in str(failed)
    [row] = await db.fetch("SELECT password_hash FROM app_user WHERE id = {}", user.id)
    assert verify_password(row["password_hash"], PASSWORD)
    assert (await http.get("/api/auth/me")).status_code == 200


async def test_guessing_the_current_password_is_limited_like_a_login(http):
    user = await make_user("tess", "technician")
    await login(http, "tess")
    events_before = await audit_events()
    change = {"current_password": "not my password!", "new_password": "a brand new passphrase"}
    for _ in range(5):  # INFUSION_LOGIN_MAX_FAILURES defaults to 5
        assert (await http.post("/api/auth/password", json=change)).status_code == 422

    refused = await http.post("/api/auth/password", json={**change, "current_password": PASSWORD})

    assert refused.status_code == 429
    assert without_request_id(refused)["detail"] == (
        "Too many failed logins; try again in 15 minutes."
    )
    [row] = await db.fetch("SELECT password_hash FROM app_user WHERE id = {}", user.id)
    assert verify_password(row["password_hash"], PASSWORD)
    # Each wrong guess is on the trail; the refused 429 attempt checked no password.
    added = (await audit_events())[len(events_before) :]
    assert [e["action"] for e in added] == ["user.password_change_failed"] * 5


async def test_changing_own_password_needs_a_json_body(http):
    user = await make_user("tess", "technician")
    await login(http, "tess")
    events_before = await audit_events()

    response = await http.post(
        "/api/auth/password",
        content=b'{"current_password": "violet kettle under the stairs",'
        b' "new_password": "a brand new passphrase"}',
        headers={"content-type": "text/plain"},
    )

    assert response.status_code == 415
    [row] = await db.fetch("SELECT password_hash FROM app_user WHERE id = {}", user.id)
    assert verify_password(row["password_hash"], PASSWORD)
    assert await audit_events() == events_before
    assert (await http.get("/api/auth/me")).status_code == 200


async def test_changing_own_password_applies_the_policy(http):
    await make_user("tess", "technician")
    await login(http, "tess")

    response = await http.post(
        "/api/auth/password", json={"current_password": PASSWORD, "new_password": "short"}
    )

    assert response.status_code == 422
    assert response.json()["detail"] == "A password must be at least 12 characters long."


# ---------------------------------------------------------------- rate limit


async def test_login_is_refused_after_too_many_failures_even_with_the_right_password(http, redis):
    await make_user("tess", "technician")
    for _ in range(5):  # INFUSION_LOGIN_MAX_FAILURES defaults to 5
        assert (await login(http, "tess", "not the right password")).status_code == 401

    refused = await login(http, "tess", PASSWORD)

    assert refused.status_code == 429
    retry_after = int(refused.headers["retry-after"])
    assert 15 * 60 - 5 <= retry_after <= 15 * 60
    assert without_request_id(refused) == {
        "type": "about:blank#rate_limited",
        "title": "Too many requests",
        "status": 429,
        "detail": "Too many failed logins; try again in 15 minutes.",
        "code": "rate_limited",
        "instance": "/api/auth/login",
    }
    assert set_cookies(refused) == []
    assert await redis.keys(SESSION_KEYS) == []
    events = await audit_events()
    assert [e["action"] for e in events] == ["user.sign_in_failed"] * 5 + ["user.sign_in_locked"]
    assert events[-1]["after"] == {
        "username": "tess",
        "client": "127.0.0.1",
        "by_address": False,
        "locked_seconds": retry_after,
    }


async def test_login_counters_are_per_username_and_client_address(http):
    await make_user("tess", "technician")
    await make_user("paco", "packer")
    near = {"x-forwarded-for": "10.1.1.1"}
    for _ in range(5):
        assert (await login(http, "tess", "not the right password", **near)).status_code == 401
    assert (await login(http, "tess", **near)).status_code == 429

    # The same person from another workstation, and another user at the locked one, go on.
    assert (await login(http, "tess", **{"x-forwarded-for": "10.1.1.2"})).status_code == 200
    assert (await login(http, "paco", **near)).status_code == 200


async def test_unknown_usernames_are_rate_limited_like_real_ones(http):
    for _ in range(5):
        assert (await login(http, "nobody.here", "not the right password")).status_code == 401
    assert (await login(http, "nobody.here", "not the right password")).status_code == 429


async def test_a_successful_login_resets_the_failure_count(http):
    await make_user("tess", "technician")
    for _ in range(4):
        assert (await login(http, "tess", "not the right password")).status_code == 401
    assert (await login(http, "tess")).status_code == 200
    for _ in range(4):
        assert (await login(http, "tess", "not the right password")).status_code == 401
    assert (await login(http, "tess")).status_code == 200


async def test_a_background_poll_does_not_extend_the_session_but_a_page_view_does(
    served_app, clean_state, redis
):
    await make_user("poller", "packer")
    client = await logged_in_client(served_app.url, "poller")
    try:
        [key] = await redis.keys(SESSION_KEYS)
        fresh = await redis.pttl(key)
        await asyncio.sleep(1.2)
        poll = await client.get("/fragments/status")
        assert poll.status_code == 200
        assert "set-cookie" not in poll.headers
        after_poll = await redis.pttl(key)
        assert after_poll <= fresh - 1000
        page = await client.get("/")
        assert page.status_code == 200
        assert await redis.pttl(key) > after_poll + 1000
        assert await redis.keys(SESSION_KEYS) == [key]
    finally:
        await client.aclose()
