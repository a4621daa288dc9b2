"""`infusion users …` run as a real subprocess against this worker's database."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from api.cli import main
from core import db
from core.identity.passwords import verify_password
from core.identity.tables import User
from tests.api.test_auth_support import make_user
from tests.servers import ROOT

PASSWORD = "a long enough passphrase"


@pytest.fixture
def infusion(clean_state):
    env = {
        **os.environ,
        "DATABASE_URL": clean_state.database_url,
        "REDIS_URL": clean_state.redis_url,
        "INFUSION_DATA_DIR": str(clean_state.data_dir),
    }

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api", "users", *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=60,
            check=False,
        )

    return run


async def audit_rows() -> list[dict]:
    return await db.fetch("SELECT actor, action, subject_id FROM audit_event ORDER BY seq")


def create_args(username: str = "Pat.Pharm", *roles: str) -> list[str]:
    role_args = [arg for role in (roles or ("pharmacist",)) for arg in ("--role", role)]
    return ["create", "--username", username, "--display-name", "Pat Pharm", *role_args]


async def test_create_reads_the_password_from_stdin_and_audits_the_os_user(infusion):
    result = infusion(
        *create_args("Pat.Pharm", "pharmacist", "admin"), "--password-stdin", stdin=PASSWORD + "\n"
    )

    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "created user pat.pharm (roles: pharmacist, admin)\n",
        "",
    )
    [user] = await User.objects()
    assert (user.username, user.display_name, user.roles) == (
        "pat.pharm",
        "Pat Pharm",
        ["pharmacist", "admin"],
    )
    assert verify_password(user.password_hash, PASSWORD)
    assert await audit_rows() == [
        {"actor": f"cli:{getpass.getuser()}", "action": "user.created", "subject_id": str(user.id)}
    ]


async def test_create_refuses_a_duplicate_and_a_weak_password_with_exit_1(infusion):
    await make_user("pat.pharm", "pharmacist")

    duplicate = infusion(*create_args("pat.pharm"), "--password-stdin", stdin=PASSWORD + "\n")
    weak = infusion(*create_args("other.pharm"), "--password-stdin", stdin="short\n")

    assert (duplicate.returncode, duplicate.stdout, duplicate.stderr) == (
        1,
        "",
        "error: The username 'pat.pharm' is already taken.\n",
    )
    assert (weak.returncode, weak.stdout, weak.stderr) == (
        1,
        "",
        "error: A password must be at least 12 characters long.\n",
    )
    assert await User.count() == 1
    assert await audit_rows() == []


async def test_create_refuses_an_unknown_role_as_a_usage_error(infusion):
    result = infusion(
        *create_args("pat.pharm", "superuser"), "--password-stdin", stdin=PASSWORD + "\n"
    )

    assert result.returncode == 2
    assert "Invalid value for '--role': 'superuser' is not one of" in result.stderr
    assert await User.count() == 0


async def test_list_set_password_and_deactivate(infusion):
    await make_user("pat.pharm", "pharmacist")
    await make_user("tess.tech", "technician")

    set_password = infusion(
        "set-password", "tess.tech", "--password-stdin", stdin="a new one, twelve plus  \n"
    )
    deactivate = infusion("deactivate", "pat.pharm", "--reason", "left the pharmacy")
    listed = infusion("list")

    assert (set_password.returncode, set_password.stdout) == (0, "password set for tess.tech\n")
    assert (deactivate.returncode, deactivate.stdout) == (0, "deactivated pat.pharm\n")
    assert listed.returncode == 0
    assert listed.stdout.splitlines() == [
        "username   active  roles                           display name",
        "pat.pharm  no      pharmacist                      Pat.Pharm (test)",
        "tess.tech  yes     technician                      Tess.Tech (test)",
    ]
    [tess] = await User.objects().where(User.username == "tess.tech")
    # Trailing spaces are part of the password; only the line ending is dropped.
    assert verify_password(tess.password_hash, "a new one, twelve plus  ")
    actor = f"cli:{getpass.getuser()}"
    assert [(row["actor"], row["action"]) for row in await audit_rows()] == [
        (actor, "user.password_set"),
        (actor, "user.deactivated"),
    ]


async def test_the_cli_cannot_deactivate_the_last_active_admin(infusion):
    """The CLI has no acting admin, so an operator may change any account, but an active admin
    must remain."""
    await make_user("ada", "admin")

    result = infusion("deactivate", "ada")

    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        "error: This would leave no active admin; make another user an admin first.\n",
    )
    [ada] = await User.objects()
    assert ada.is_active is True
    assert await audit_rows() == []


async def test_a_reason_with_a_control_character_is_refused_with_a_sentence(infusion):
    await make_user("pat.pharm", "pharmacist")

    result = infusion("deactivate", "pat.pharm", "--reason", "left\x1b[2J")

    assert (result.returncode, result.stderr) == (
        1,
        "error: A reason must not contain control characters.\n",
    )
    [pat] = await User.objects()
    assert pat.is_active is True
    assert await audit_rows() == []


async def test_commands_on_an_unknown_user_exit_1_with_a_sentence(infusion):
    result = infusion("deactivate", "nobody.here")

    assert (result.returncode, result.stderr) == (1, "error: There is no user 'nobody.here'.\n")
    assert await audit_rows() == []


def test_interactive_create_asks_twice_and_refuses_a_weak_password_before_connecting():
    """The hidden prompt with confirmation; a policy violation ends it before any server work
    (CliRunner in-process: nothing here reaches a database)."""
    runner = CliRunner()

    result = runner.invoke(
        main,
        ["users", *create_args("pat.pharm")],
        input="too short\ntoo short\n",
        catch_exceptions=False,
    )

    assert result.exit_code == 1
    assert "Password: \nRepeat for confirmation: \n" in result.output
    assert "error: A password must be at least 12 characters long." in result.output


def test_interactive_create_repeats_the_question_when_the_two_entries_differ():
    runner = CliRunner()

    result = runner.invoke(
        main, ["users", *create_args("pat.pharm")], input="one passphrase\nanother one\n"
    )

    assert "Error: The two entered values do not match." in result.output
    assert result.exit_code == 1  # input ran out while asking again: aborted, nothing created


async def test_a_password_set_on_the_shell_must_be_changed_unless_the_owner_typed_it(infusion):
    forced = infusion(*create_args("pat.pharm"), "--password-stdin", stdin=PASSWORD + "\n")
    typed = infusion(
        *create_args("own.choice"), "--password-stdin", "--no-forced-change", stdin=PASSWORD + "\n"
    )
    reset = infusion("set-password", "own.choice", "--password-stdin", stdin="reset by ops today\n")

    assert [r.returncode for r in (forced, typed, reset)] == [0, 0, 0]
    rows = await db.fetch("SELECT username, must_change_password FROM app_user ORDER BY username")
    assert rows == [
        {"username": "own.choice", "must_change_password": True},
        {"username": "pat.pharm", "must_change_password": True},
    ]
    typed_rows = await db.fetch(
        "SELECT after->>'must_change_password' AS m FROM audit_event WHERE action = 'user.created'"
        " ORDER BY seq"
    )
    assert [r["m"] for r in typed_rows] == ["true", "false"]


async def test_the_shell_refuses_breached_and_demo_passwords_outside_development(infusion):
    breached = infusion(*create_args("pat.pharm"), "--password-stdin", stdin="qwerty123456\n")
    demo = infusion(*create_args("pat.pharm"), "--password-stdin", stdin="infusion-demo-2026\n")

    assert (breached.returncode, breached.stderr) == (
        1,
        "error: This password is on a list of common or breached passwords; choose another.\n",
    )
    assert (demo.returncode, demo.stderr) == (
        1,
        "error: The demo password is published; choose a password nobody else knows.\n",
    )
    assert await User.count() == 0


async def test_tokens_are_listed_and_revoked_from_the_shell_and_a_reset_revokes_the_rest(
    infusion,
):
    from core.identity.services import issue_token

    tess = await make_user("tess.tech", "technician")
    async with db.transaction():
        printer, _ = await issue_token(tess.id, name="label printer", actor="test")
        scale, _ = await issue_token(tess.id, name="scale", actor="test")

    listed = infusion("tokens", "tess.tech")
    revoked = infusion("revoke-token", "tess.tech", str(printer.id), "--reason", "printer lost")
    not_hers = infusion("revoke-token", "nobody.here", str(scale.id))
    reset = infusion("set-password", "tess.tech", "--password-stdin", stdin="reset by ops today\n")
    after = infusion("tokens", "tess.tech")

    assert listed.returncode == 0
    assert listed.stdout.splitlines() == [
        "    id  prefix    state    last used                  name",
        f"{printer.id:>6}  {printer.prefix}  active   never                      label printer",
        f"{scale.id:>6}  {scale.prefix}  active   never                      scale",
    ]
    assert (revoked.returncode, revoked.stdout) == (
        0,
        f"revoked token {printer.id} ({printer.prefix}, label printer)\n",
    )
    assert (not_hers.returncode, not_hers.stderr) == (
        1,
        "error: There is no user 'nobody.here'.\n",
    )
    assert reset.returncode == 0
    assert [line.split()[2] for line in after.stdout.splitlines()[1:]] == ["revoked", "revoked"]
    actor = f"cli:{getpass.getuser()}"
    trail = await db.fetch(
        "SELECT actor, action, subject_id, reason FROM audit_event"
        " WHERE action = 'api_token.revoked' ORDER BY seq"
    )
    assert trail == [
        {"actor": actor, "action": "api_token.revoked", "subject_id": str(printer.id),
         "reason": "printer lost"},
        {"actor": actor, "action": "api_token.revoked", "subject_id": str(scale.id),
         "reason": "password changed"},
    ]  # fmt: skip
