"""Fixtures for tests that touch PostgreSQL, Redis, a served app or a worker.

Architecture rule for tests: real servers, no mocks. Each xdist worker gets its own database
built from the migrations and its own Redis db; every test starts from empty tables and an
empty Redis (`clean_state`). The served app runs in a subprocess on loopback, because
Litestar's test clients run the app on another event loop than the test body (STACK.md).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from core.embedded import free_loopback_port, stop_process, with_database
from core.settings import Settings, load_settings
from tests.servers import (
    PG_ADMIN_ENV,
    REDIS_BASE_ENV,
    ROOT,
    claim_redis_db,
    database_name,
    redis_url_for,
    release_redis_db,
)

# Tables kept between tests: Piccolo's record of applied migrations.
KEEP_TABLES = {"migration"}


@pytest.fixture(scope="session")
def test_settings(worker_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of this test worker: its own database and Redis db, a temporary data folder."""
    base = os.environ[REDIS_BASE_ENV]
    owner = database_name(worker_id)
    redis_db = claim_redis_db(base, owner)
    os.environ["DATABASE_URL"] = with_database(os.environ[PG_ADMIN_ENV], database_name(worker_id))
    os.environ["REDIS_URL"] = redis_url_for(base, redis_db)
    os.environ["INFUSION_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    yield load_settings()
    release_redis_db(base, redis_db, owner)


async def _drop_database(admin_url: str, name: str, *, create: bool = False) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if create:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def database(test_settings: Settings, worker_id: str) -> AsyncIterator[Settings]:
    """A fresh database built from the migrations, with this loop's pool open."""
    from api.migrations import run_migrations
    from core import db

    name = database_name(worker_id)
    await _drop_database(os.environ[PG_ADMIN_ENV], name, create=True)
    await run_migrations(test_settings.database_url or "")
    await db.open_pool(test_settings.database_url or "", max_size=5)
    yield test_settings
    await db.close_pool()
    await _drop_database(os.environ[PG_ADMIN_ENV], name)


@pytest.fixture(scope="session")
async def redis(test_settings: Settings) -> AsyncIterator[Redis]:
    from core import queue

    client = Redis.from_url(test_settings.redis_url or "")
    await queue.connect(test_settings.redis_url or "")
    yield client
    await queue.disconnect()
    await client.aclose()


async def app_tables() -> list[str]:
    from core import db

    rows = await db.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    )
    return [r["tablename"] for r in rows if r["tablename"] not in KEEP_TABLES]


@pytest.fixture
async def clean_state(database: Settings, redis: Redis) -> Settings:
    """Empty tables and an empty Redis db before the test."""
    from core import db

    tables = await app_tables()
    async with db.transaction():
        # The audit trail refuses TRUNCATE through a trigger; replica mode skips triggers.
        await db.fetch("SET LOCAL session_replication_role = replica")
        await db.fetch(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    await redis.flushdb()
    # The audit trail's outside anchor lives in this worker's data folder: a worker subprocess
    # of an earlier test (its cron anchors every minute) must not leave a head that today's
    # empty trail can never reach.
    database.audit_anchor_file.unlink(missing_ok=True)
    return database


# ------------------------------------------------------------------ a served app on loopback


@dataclass
class ServedApp:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process)


def serve_app(env: dict[str, str], log_path: Path, *, timeout: float = 60) -> ServedApp:
    """Start `infusion serve` in a subprocess and wait until it answers on /health."""
    port = free_loopback_port()
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "api", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    served = ServedApp(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with {process.returncode}:\n{served.log()}")
        try:
            httpx.get(served.url + "/health", timeout=1)
            return served
        except httpx.TransportError:
            time.sleep(0.05)
    served.stop()
    raise RuntimeError(f"the app did not answer within {timeout} s:\n{served.log()}")


@pytest.fixture(scope="session")
def served_app(database: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    """The real app served by uvicorn on a loopback port, against this worker's database."""
    app = serve_app(dict(os.environ), tmp_path_factory.mktemp("served") / "app.log")
    yield app
    app.stop()


@pytest.fixture
async def http(served_app: ServedApp, clean_state: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served_app.url, timeout=10) as client:
        yield client


PRODUCTION_LIKE_URL = "https://pharmacy.example"


@pytest.fixture(scope="session")
def production_like_app(
    database: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedApp]:
    """The app as production runs it: no trusted proxy (the tests' client is an ordinary
    peer, its X-Forwarded-For a forgery) and an https public URL. Cookies are Secure, so
    httpx does not send them back over http: use it for single requests."""
    env = {**os.environ, "INFUSION_TRUSTED_PROXIES": "", "INFUSION_PUBLIC_URL": PRODUCTION_LIKE_URL}
    app = serve_app(env, tmp_path_factory.mktemp("production-like") / "app.log")
    yield app
    app.stop()


@pytest.fixture
async def production_like(
    production_like_app: ServedApp, clean_state: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=production_like_app.url, timeout=10) as client:
        yield client


# ------------------------------------------------------------------ jobs


@pytest.fixture
def run_worker(clean_state: Settings) -> Any:
    """Run a real arq worker in burst mode on this loop until the queue is empty."""
    from arq.worker import Worker

    from api.worker import worker_kwargs

    async def run(**overrides: Any) -> Worker:
        kwargs = worker_kwargs(
            clean_state,
            manage_resources=False,
            burst=True,
            poll_delay=0.01,
            handle_signals=False,
            cron_jobs=[],
            **overrides,
        )
        worker = Worker(**kwargs)
        try:
            await asyncio.wait_for(worker.main(), timeout=30)
        finally:
            await worker.close()
        return worker

    return run
