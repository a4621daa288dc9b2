"""What every `infusion` command shares: settings, servers, a database pool for one-shot work.

Commands other than `dev` use DATABASE_URL / REDIS_URL when set, and otherwise join (or start)
the embedded servers under the data folder, so `infusion users create` works beside a running
`infusion dev`. The command groups of api/ and of each context (its manifest's `cli`) import
this module; the `infusion` entry point (api/cli.py) imports them, never the other way round.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from core.settings import Settings, load_settings

T = TypeVar("T")


def settings_from_env() -> Settings:
    return load_settings()


@contextmanager
def servers_for(settings: Settings, *, own: bool = False) -> Iterator[Settings]:
    """Resolve DATABASE_URL and REDIS_URL, starting embedded servers for what is unset."""
    from core.embedded import start_servers

    servers = start_servers(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        data_dir=settings.data_dir,
        own=own,
    )
    # piccolo_conf reads DATABASE_URL when it is first imported (by Piccolo's engine finder).
    os.environ["DATABASE_URL"] = servers.database_url
    os.environ["REDIS_URL"] = servers.redis_url
    try:
        yield settings.with_urls(database_url=servers.database_url, redis_url=servers.redis_url)
    finally:
        servers.stop()


def run_with_database(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` with the database pool open (for one-shot commands)."""
    from core import db

    async def runner() -> T:
        await db.open_pool(
            settings.database_url or "", max_size=2, command_timeout=db.BATCH_COMMAND_TIMEOUT_S
        )
        try:
            return await work()
        finally:
            await db.close_pool()

    return asyncio.run(runner())
