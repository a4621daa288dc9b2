"""`infusion seed`: the fictional demo, idempotent, and never on a production system."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from core import db
from tests.servers import ROOT


def seed(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api", "seed"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def usernames() -> list[str]:
    return [
        r["username"] for r in await db.fetch("SELECT username FROM app_user ORDER BY username")
    ]


async def test_seed_creates_the_demo_accounts_once():
    first = await asyncio.to_thread(seed)
    assert (first.returncode, first.stdout.strip()) == (0, "demo data: created 5 users")
    assert await usernames() == ["admin", "packer", "pharmacist", "pharmacist2", "technician"]
    again = await asyncio.to_thread(seed)
    assert (again.returncode, again.stdout.strip()) == (0, "demo data: already present")
    assert len(await usernames()) == 5


async def test_seed_is_refused_in_production_and_creates_nothing():
    result = await asyncio.to_thread(seed, INFUSION_ENV="production")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: The demo data is refused when INFUSION_ENV=production: its accounts have "
        "published passwords. Create real accounts with `infusion users create`."
    )
    assert await usernames() == []
    assert await db.fetch("SELECT count(*) AS n FROM audit_event") == [{"n": 0}]
