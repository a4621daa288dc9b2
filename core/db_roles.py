"""The database role the API and workers run as, set up by `infusion migrate` (the owner).

The owner (DATABASE_URL of `infusion migrate`) creates and alters tables; it can disable the
audit trigger, so the app must not connect as it. INFUSION_APP_DATABASE_URL names the app's
own login role: migrate creates it when missing (when the owner may create roles) and grants
it plain DML on every table, except the audit trail, where it may only read and append. A
role that is neither superuser, nor owner, nor a member of the owner cannot UPDATE, DELETE or
TRUNCATE audit rows, cannot disable the trigger and cannot set session_replication_role: a
compromised app process cannot rewrite history.

Grants are made again on every migrate, so tables added by later migrations are covered.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from core import db
from core.errors import ConfigurationError

APPEND_ONLY_TABLES = ("audit_event",)
# Piccolo's record of applied migrations: the app reads nothing there and must write nothing.
OWNER_ONLY_TABLES = ("migration",)


@dataclass(frozen=True)
class AppRole:
    name: str
    password: str | None


def app_role_of(dsn: str) -> AppRole:
    parts = urlsplit(dsn)
    if not parts.username:
        raise ConfigurationError("INFUSION_APP_DATABASE_URL must name a user (postgresql://user:…)")
    password = unquote(parts.password) if parts.password else None
    return AppRole(name=unquote(parts.username), password=password)


async def _run(statement: str, *args: object) -> None:
    """Build a statement with the server's own quoting (format %I / %L), then run it: role
    names and passwords cannot be bound as parameters in DDL."""
    [row] = await db.fetch(
        f"SELECT format({{}}::text, {', '.join('{}::text' for _ in args)}) AS sql",
        statement,
        *(str(arg) for arg in args),
    )
    # run_ddl hands the text to asyncpg as it is (db.fetch would read braces as placeholders).
    await db.engine().run_ddl(row["sql"])


async def grant_app_role(dsn: str) -> AppRole:
    """Create (if missing) and grant the app's role; refuse a role that could tamper."""
    role = app_role_of(dsn)
    [me] = await db.fetch("SELECT current_user AS name, current_database() AS db")
    if role.name == me["name"]:
        raise ConfigurationError(
            "INFUSION_APP_DATABASE_URL must name another role than DATABASE_URL's "
            f"({me['name']} owns the tables and could disable the audit trigger)"
        )
    found = await db.fetch("SELECT rolsuper FROM pg_roles WHERE rolname = {}", role.name)
    if not found:
        await _create(role, owner=me["name"])
    elif found[0]["rolsuper"]:
        raise ConfigurationError(
            f"the app's database role {role.name} is a superuser; it must be an ordinary role "
            "(a superuser can disable the audit trigger)"
        )
    [member] = await db.fetch("SELECT pg_has_role({}, {}, 'USAGE') AS yes", role.name, me["name"])
    if member["yes"]:
        raise ConfigurationError(
            f"the app's database role {role.name} is a member of the owner {me['name']}; "
            "revoke that membership (it could disable the audit trigger)"
        )
    await _run("GRANT CONNECT ON DATABASE %I TO %I", me["db"], role.name)
    await _run("GRANT USAGE ON SCHEMA public TO %I", role.name)
    await _run(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %I", role.name
    )
    await _run("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %I", role.name)
    for table in APPEND_ONLY_TABLES:
        await _run(
            "REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON %I FROM %I", table, role.name
        )
    for table in OWNER_ONLY_TABLES:
        await _run("REVOKE ALL ON %I FROM %I", table, role.name)
    return role


async def _create(role: AppRole, *, owner: str) -> None:
    import asyncpg

    statement = "CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
    args: list[object] = [role.name]
    if role.password:
        statement += " PASSWORD %L"
        args.append(role.password)
    try:
        await _run(statement, *args)
    except asyncpg.InsufficientPrivilegeError:
        raise ConfigurationError(
            f"the database role {role.name} does not exist and {owner} may not create roles: "
            f"create it (CREATE ROLE {role.name} LOGIN PASSWORD '…') and run infusion migrate "
            "again"
        ) from None
    except asyncpg.DuplicateObjectError:
        pass  # another migrate created it a moment ago


async def secure_after_migrations() -> None:
    """Run by `infusion migrate` after the migrations, as the owner: the app's role and its
    grants (when INFUSION_APP_DATABASE_URL is set).

    It never seals an audit trail written before the chain was keyed: a plain-sha256 trail is
    also what a rewrite without the key looks like, so sealing is an operator's explicit,
    one-time `infusion audit seal-legacy` (core.audit.services.seal_legacy_chain)."""
    from core.settings import load_settings

    settings = load_settings()
    engine = db.engine()
    # Migrations run before any pool is open (core.db's transactions need one): open a small
    # one for these few statements, and leave the process as it was.
    opened = engine.pool is None
    if opened:
        await db.open_pool(engine.config["dsn"], max_size=1)
    try:
        if settings.app_database_url:
            await grant_app_role(settings.app_database_url)
    finally:
        if opened:
            await db.close_pool()
