"""The app's database role (INFUSION_APP_DATABASE_URL), granted by `infusion migrate`, may read
and append the audit trail and nothing else: it cannot change, delete or truncate rows, nor
switch the append-only trigger off."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from core import db
from core.db_roles import grant_app_role
from core.errors import ConfigurationError
from core.settings import Settings
from tests.integration.test_audit import add_events
from tests.servers import PG_ADMIN_ENV

PASSWORD = "app-role-test-password-{x}"  # braces: the DDL must not read them as placeholders


def dsn_as(settings: Settings, user: str, password: str | None = None) -> str:
    parts = urlsplit(settings.database_url or "")
    host = parts.netloc.rsplit("@", 1)[-1]
    auth = f"{user}:{password}" if password else user
    return urlunsplit(parts._replace(netloc=f"{auth}@{host}"))


async def drop_role(name: str) -> None:
    """Roles are cluster-wide: remove this test's role and its grants in this test database
    (own connections, so this also works from another event loop than the tests')."""
    admin = await asyncpg.connect(os.environ[PG_ADMIN_ENV])
    try:
        if await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name):
            owner = await asyncpg.connect(os.environ["DATABASE_URL"])
            try:
                await owner.execute(f'DROP OWNED BY "{name}"')
            finally:
                await owner.close()
            await admin.execute(f'DROP ROLE "{name}"')
    finally:
        await admin.close()


@pytest.fixture
async def app_role(clean_state: Settings) -> AsyncIterator[str]:
    """A role name no other test run uses (roles are shared by every database)."""
    name = f"infusion_app_{os.getpid()}"
    await drop_role(name)
    yield name
    await drop_role(name)


@pytest.fixture
async def as_app(app_role: str, clean_state: Settings) -> AsyncIterator[asyncpg.Connection]:
    dsn = dsn_as(clean_state, app_role, PASSWORD)
    assert (await grant_app_role(dsn)).name == app_role
    conn = await asyncpg.connect(dsn)
    yield conn
    await conn.close()


async def test_migrate_creates_a_plain_login_role(as_app, app_role):
    [role] = await db.fetch(
        "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls"
        " FROM pg_roles WHERE rolname = {}",
        app_role,
    )
    assert role == {
        "rolcanlogin": True,
        "rolsuper": False,
        "rolcreaterole": False,
        "rolcreatedb": False,
        "rolbypassrls": False,
    }
    assert await as_app.fetchval("SELECT current_user") == app_role


async def test_the_app_role_reads_and_appends_but_cannot_change_the_trail(as_app, app_role):
    await add_events(2)
    assert await as_app.fetchval("SELECT count(*) FROM audit_event") == 2
    await as_app.execute(
        "INSERT INTO audit_event (seq, occurred_at, actor, action, subject_type, subject_id,"
        " reason, request_id, prev_hash, row_hash) VALUES (3, now(), 'system', 'a.b', 't', '1',"
        " '', '', 'x', 'y')"
    )
    refused = {
        "UPDATE audit_event SET reason = 'edited'": "permission denied for table audit_event",
        "DELETE FROM audit_event WHERE seq = 3": "permission denied for table audit_event",
        "TRUNCATE audit_event": "permission denied for table audit_event",
        "ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only": (
            "must be owner of table audit_event"
        ),
        "ALTER TABLE audit_event DISABLE TRIGGER ALL": "must be owner of table audit_event",
        "DROP TRIGGER audit_event_append_only ON audit_event": (
            "must be owner of relation audit_event"
        ),
        "SET session_replication_role = replica": (
            'permission denied to set parameter "session_replication_role"'
        ),
        "INSERT INTO migration (name, app_name, ran_on) VALUES ('x', 'core', now())": (
            "permission denied for table migration"
        ),
    }
    for sql, message in refused.items():
        with pytest.raises(asyncpg.InsufficientPrivilegeError) as caught:
            await as_app.execute(sql)
        assert str(caught.value) == message, sql
    rows = await db.fetch("SELECT seq, reason FROM audit_event ORDER BY seq")
    assert rows == [
        {"seq": 1, "reason": "checked temperature plan"},
        {"seq": 2, "reason": "checked temperature plan"},
        {"seq": 3, "reason": ""},
    ]
    [trigger] = await db.fetch(
        "SELECT tgenabled::text AS tgenabled FROM pg_trigger"
        " WHERE tgname = 'audit_event_append_only'"
    )
    assert trigger == {"tgenabled": "O"}  # still enabled


async def test_the_app_role_may_change_ordinary_tables(as_app):
    await as_app.execute(
        "INSERT INTO app_user (username, display_name, password_hash, roles, is_active,"
        " created_at, password_changed_at, credentials_changed_at)"
        " VALUES ('tess', 'Tess', 'x', '{}', true, now(), now(), now())"
    )
    await as_app.execute("UPDATE app_user SET display_name = 'Tess T.' WHERE username = 'tess'")
    await as_app.execute("SELECT id FROM app_user FOR UPDATE")
    await as_app.execute("DELETE FROM app_user WHERE username = 'tess'")
    assert await db.fetch("SELECT count(*) AS n FROM app_user") == [{"n": 0}]


async def test_granting_again_is_harmless(as_app, app_role, clean_state):
    await grant_app_role(dsn_as(clean_state, app_role, PASSWORD))
    assert await as_app.fetchval("SELECT count(*) FROM audit_event") == 0


async def test_the_owner_is_refused_as_the_app_role(clean_state):
    [me] = await db.fetch("SELECT current_user AS name")
    with pytest.raises(ConfigurationError) as caught:
        await grant_app_role(dsn_as(clean_state, me["name"]))
    assert caught.value.message == (
        f"INFUSION_APP_DATABASE_URL must name another role than DATABASE_URL's ({me['name']} "
        "owns the tables and could disable the audit trigger)"
    )


async def test_a_superuser_is_refused_as_the_app_role(app_role, clean_state):
    await db.engine().run_ddl(f'CREATE ROLE "{app_role}" SUPERUSER')
    with pytest.raises(ConfigurationError) as caught:
        await grant_app_role(dsn_as(clean_state, app_role))
    assert caught.value.message == (
        f"the app's database role {app_role} is a superuser; it must be an ordinary role (a "
        "superuser can disable the audit trigger)"
    )


async def test_a_dsn_without_a_user_is_refused():
    with pytest.raises(ConfigurationError) as caught:
        await grant_app_role("postgresql:///infusion")
    assert caught.value.message == (
        "INFUSION_APP_DATABASE_URL must name a user (postgresql://user:…)"
    )
