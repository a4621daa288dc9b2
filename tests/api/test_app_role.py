"""The app served as its own database role (INFUSION_APP_DATABASE_URL), as compose runs it:
`infusion migrate` creates and grants the role, sign-ins (failed and good) are audited by it,
and GET /api/audit/verify checks the chain and the outside anchor."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import httpx
import pytest

from core.audit.jobs import anchor_head
from core.settings import Settings
from tests.api.test_auth_support import audit_events, logged_in_client, login, make_user
from tests.fixtures import ServedApp, serve_app
from tests.integration.test_audit_integrity import (
    add_old_events,
    all_rows,
    as_owner_without_trigger,
)
from tests.integration.test_audit_roles import PASSWORD, drop_role, dsn_as
from tests.servers import ROOT


@pytest.fixture(scope="module")
def role_app(database: Settings, tmp_path_factory) -> Iterator[tuple[ServedApp, Settings]]:
    name = f"infusion_app_served_{os.getpid()}"
    asyncio.run(drop_role(name))
    app_dsn = dsn_as(database, name, PASSWORD)
    migrate = subprocess.run(
        [sys.executable, "-m", "api", "migrate"],
        cwd=ROOT,
        env={**os.environ, "INFUSION_APP_DATABASE_URL": app_dsn},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (migrate.returncode, migrate.stdout.strip()) == (0, "database is up to date"), (
        migrate.stderr
    )
    anchor_file = tmp_path_factory.mktemp("anchor") / "audit-anchor.jsonl"
    env = {**os.environ, "DATABASE_URL": app_dsn, "INFUSION_AUDIT_ANCHOR_FILE": str(anchor_file)}
    app = serve_app(env, tmp_path_factory.mktemp("role-app") / "app.log")
    yield app, replace(database, audit_anchor_file=anchor_file)
    app.stop()
    asyncio.run(drop_role(name))


@pytest.fixture
async def served(role_app, clean_state) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    app, settings = role_app
    settings.audit_anchor_file.unlink(missing_ok=True)
    async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
        yield client, settings


async def test_sign_ins_are_audited_by_the_app_role_and_the_chain_verifies(served):
    http, _ = served
    admin = await make_user("ada", "admin")
    assert (await login(http, "ada", "not the right password")).status_code == 401
    client = await logged_in_client(str(http.base_url), "ada")
    try:
        response = await client.get("/api/audit/verify")
    finally:
        await client.aclose()
    assert response.status_code == 200, response.text
    assert response.json() == {
        "ok": True,
        "checked": 2,
        "seq": None,
        "message": "audit trail intact: 2 event(s) checked; the outside anchor is not yet "
        "written (the trail is younger than 10 minutes)",
        "anchored_seq": None,
    }
    events = [(e["actor"], e["action"]) for e in await audit_events()]
    assert events == [("anonymous", "user.sign_in_failed"), (f"user:{admin.id}", "user.logged_in")]


async def test_verify_reports_newest_rows_deleted_behind_the_anchor(served):
    http, settings = served
    await make_user("ada", "admin")
    for _ in range(2):
        assert (await login(http, "ada", "not the right password")).status_code == 401
    client = await logged_in_client(str(http.base_url), "ada")
    try:
        assert (await anchor_head(settings)).seq == 3
        await as_owner_without_trigger(("DELETE FROM audit_event WHERE seq = {}", (3,)))
        response = await client.get("/api/audit/verify")
    finally:
        await client.aclose()
    body = response.json()
    # anchored_seq names the anchor whose check failed.
    assert (
        response.status_code,
        body["ok"],
        body["checked"],
        body["seq"],
        body["anchored_seq"],
    ) == (200, False, 2, 3, 3)
    assert body["message"].startswith(
        "audit trail broken at seq 3: rows 3 to 3 are missing (the outside anchor of "
    )


async def test_verify_without_the_anchor_on_an_old_trail_fails_and_hides_the_path(served):
    http, settings = served
    await add_old_events(1)
    await make_user("ada", "admin")
    client = await logged_in_client(str(http.base_url), "ada")
    try:
        missing = (await client.get("/api/audit/verify")).json()
        settings.audit_anchor_file.write_text("not an anchor\n")
        unreadable = (await client.get("/api/audit/verify")).json()
    finally:
        await client.aclose()
    since = (await all_rows())[0]["occurred_at"].isoformat(timespec="microseconds")
    assert missing == {
        "ok": False,
        "checked": 2,
        "seq": None,
        "message": "audit trail not verified: the outside anchor is missing; the newest rows "
        f"cannot be checked (the trail holds events since {since}, which the anchor job should "
        "have anchored within 10 minutes)",
        "anchored_seq": None,
    }
    assert unreadable == {
        "ok": False,
        "checked": 0,
        "seq": None,
        "message": "audit trail not verified: the outside anchor does not end with an anchor line",
        "anchored_seq": None,
    }
    assert str(settings.audit_anchor_file.parent) not in str(unreadable)
