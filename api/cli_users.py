"""`infusion users …`: staff accounts from the command line (the first admin comes from here).

Passwords are never command-line arguments (they would sit in shell history and `ps`): they
are typed twice at a hidden prompt, or read as one line from stdin with --password-stdin.
Refusals end in one sentence and exit code 1 (api.cli.InfusionGroup).

The server's shell is trusted with what the API guards: `create` grants admin and pharmacist
at once (the documented exception to the two-person rule: whoever runs commands on the server
holds the database anyway, and the first admin has to come from somewhere). A password set
here is someone else's choice, so its owner must change it at the next sign-in, unless
`--no-forced-change` says the owner typed it themself.
"""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING

import click

from core.commandline import run_with_database, servers_for, settings_from_env
from core.identity.model import ROLE_ORDER, normalise_username
from core.identity.password_policy import check_new_password

if TYPE_CHECKING:
    from core.identity.tables import ApiToken, User


def _actor() -> str:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return f"cli:{who}"


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        line = sys.stdin.readline()
        # Only the line ending is removed: spaces are part of a password.
        return line.removesuffix("\n").removesuffix("\r")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


_password_stdin = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password as one line from stdin instead of prompting.",
)
_no_forced_change = click.option(
    "--no-forced-change",
    is_flag=True,
    help="The account's owner typed this password themself: do not ask for a new one at the "
    "next sign-in.",
)


@click.group()
def users() -> None:
    """Staff accounts: create, list, set passwords, deactivate."""


@users.command()
@click.option("--username", required=True, help="Login name: 3-150 of a-z 0-9 . _ -")
@click.option("--display-name", required=True, help="Name shown on screens and records.")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice([role.value for role in ROLE_ORDER]),
    help="Repeat for several roles; roles do not imply each other.",
)
@_password_stdin
@_no_forced_change
def create(
    username: str,
    display_name: str,
    roles: tuple[str, ...],
    password_stdin: bool,
    no_forced_change: bool,
) -> None:
    """Create a staff account (admin and pharmacist granted at once: the server's shell is
    the exception to the two-person rule)."""
    from core import db
    from core.identity.services import create_user

    settings = settings_from_env()
    password = _read_password(password_stdin)
    # Checked again by the service; here so a typo is reported before any server starts.
    check_new_password(
        password, username=normalise_username(username), environment=settings.environment
    )
    actor = _actor()

    async def work() -> User:
        async with db.transaction():
            return await create_user(
                username=username,
                display_name=display_name,
                password=password,
                roles=roles,
                actor=actor,
                must_change_password=not no_forced_change,
                settings=settings,
            )

    with servers_for(settings) as resolved:
        user = run_with_database(resolved, work)
    click.echo(f"created user {user.username} (roles: {', '.join(user.roles)})")


@users.command(name="list")
def list_() -> None:
    """Every staff account, by username."""
    from core.identity.services import list_users

    settings = settings_from_env()
    with servers_for(settings) as resolved:
        rows = run_with_database(resolved, list_users)
    if not rows:
        click.echo("no users yet: create one with `infusion users create`")
        return
    width = max(len("username"), *(len(user.username) for user in rows))
    click.echo(f"{'username':<{width}}  {'active':<6}  {'roles':<30}  display name")
    for user in rows:
        active = "yes" if user.is_active else "no"
        roles = ", ".join(user.roles)
        click.echo(f"{user.username:<{width}}  {active:<6}  {roles:<30}  {user.display_name}")


@users.command(name="set-password")
@click.argument("username")
@_password_stdin
@_no_forced_change
def set_password_(username: str, password_stdin: bool, no_forced_change: bool) -> None:
    """Set USERNAME's password (their sessions end and their API tokens are revoked)."""
    from core import db
    from core.identity.services import get_user_by_username, set_password

    settings = settings_from_env()
    password = _read_password(password_stdin)
    check_new_password(
        password, username=username.strip().lower(), environment=settings.environment
    )
    actor = _actor()

    async def work() -> User:
        async with db.transaction():
            user = await get_user_by_username(username)
            return await set_password(
                user.id,
                password=password,
                actor=actor,
                must_change_password=not no_forced_change,
                settings=settings,
            )

    with servers_for(settings) as resolved:
        user = run_with_database(resolved, work)
    click.echo(f"password set for {user.username}")


@users.command()
@click.argument("username")
@click.option("--reason", default="", help="Why, for the audit trail.")
def deactivate(username: str, reason: str) -> None:
    """Deactivate USERNAME: their sessions end and their API tokens are revoked, for good
    (reactivating the account revives neither)."""
    from core import db
    from core.identity.services import get_user_by_username, update_user

    actor = _actor()

    async def work() -> User:
        async with db.transaction():
            user = await get_user_by_username(username)
            return await update_user(user.id, actor=actor, is_active=False, reason=reason)

    settings = settings_from_env()
    with servers_for(settings) as resolved:
        user = run_with_database(resolved, work)
    click.echo(f"deactivated {user.username}")


@users.command()
@click.argument("username")
def tokens(username: str) -> None:
    """List USERNAME's API tokens (never the tokens themselves)."""
    from core.identity.services import get_user_by_username, list_tokens

    async def work() -> list[ApiToken]:
        user = await get_user_by_username(username)
        return await list_tokens(user.id)

    settings = settings_from_env()
    with servers_for(settings) as resolved:
        rows = run_with_database(resolved, work)
    if not rows:
        click.echo(f"{username.strip().lower()} has no API tokens")
        return
    click.echo(f"{'id':>6}  {'prefix':<8}  {'state':<7}  {'last used':<25}  name")
    for token in rows:
        state = "revoked" if token.revoked_at is not None else "active"
        used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never"
        click.echo(f"{token.id:>6}  {token.prefix:<8}  {state:<7}  {used:<25}  {token.name}")


@users.command(name="revoke-token")
@click.argument("username")
@click.argument("token_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--reason", default="", help="Why, for the audit trail.")
def revoke_token_(username: str, token_id: int, reason: str) -> None:
    """Revoke USERNAME's API token TOKEN_ID (idempotent)."""
    from core import db
    from core.identity.services import get_user_by_username, revoke_token

    actor = _actor()

    async def work() -> ApiToken:
        async with db.transaction():
            user = await get_user_by_username(username)
            return await revoke_token(token_id, actor=actor, owner_id=user.id, reason=reason)

    settings = settings_from_env()
    with servers_for(settings) as resolved:
        token = run_with_database(resolved, work)
    click.echo(f"revoked token {token.id} ({token.prefix}, {token.name})")
