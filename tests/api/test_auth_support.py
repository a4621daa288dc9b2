"""Helpers shared by the identity API tests (no tests here)."""

from __future__ import annotations

import functools
import json
from typing import Any

import httpx

from core import db
from core.clock import utcnow
from core.identity.passwords import hash_password
from core.identity.tables import User

PASSWORD = "violet kettle under the stairs"
SESSION_COOKIE = "infusion_session"


@functools.cache
def _default_hash() -> str:
    # One argon2 hash for every fixture user: keeps the suite fast; the service path that
    # hashes is tested on its own.
    return hash_password(PASSWORD)


async def make_user(
    username: str, *roles: str, password: str | None = None, active: bool = True
) -> User:
    """A committed staff account, written directly (fixture data, not the code under test)."""
    now = utcnow()
    user = User(
        username=username,
        display_name=f"{username.title()} (test)",
        password_hash=_default_hash() if password is None else hash_password(password),
        roles=list(roles),
        is_active=active,
        created_at=now,
        password_changed_at=now,
        credentials_changed_at=now,
    )
    await user.save()
    return user


async def login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD, **headers: str
) -> httpx.Response:
    return await client.post(
        "/api/auth/login", json={"username": username, "password": password}, headers=headers
    )


async def logged_in_client(base_url: str, username: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base_url, timeout=10)
    response = await login(client, username)
    assert response.status_code == 200, response.text
    return client


def without_request_id(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body.pop("request_id") == response.headers["x-request-id"]
    return body


def set_cookies(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


def session_cookie_header(response: httpx.Response) -> str:
    [header] = [c for c in set_cookies(response) if c.startswith(SESSION_COOKIE + "=")]
    return header


def cookie_value(header: str) -> str:
    return header.split(";", 1)[0].split("=", 1)[1]


def cookie_attributes(header: str) -> dict[str, str]:
    attributes = {}
    for part in header.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        attributes[key.lower()] = value
    return attributes


async def audit_events() -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT actor, action, subject_type, subject_id, before::text AS before,"
        " after::text AS after, reason FROM audit_event ORDER BY seq"
    )
    for row in rows:
        for key in ("before", "after"):
            row[key] = json.loads(row[key]) if row[key] is not None else None
    return rows


async def user_count() -> int:
    return await User.count()
