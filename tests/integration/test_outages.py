"""Redis stopped under a running `infusion worker` and a running `infusion dev`: both survive,
say so once, resume, and a job enqueued after recovery runs exactly once. A `kill -9` of
`infusion dev` does not leave the next clean stop unable to stop the embedded PostgreSQL.

Real subprocesses throughout; the Redis servers stopped here are private ones (a
redis-server on a free port, or `infusion dev`'s own embedded one under a tmp folder), never
the shared server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import RedisSettings, create_pool

from core import db, queue
from core.embedded import free_loopback_port, stop_process
from core.jobs import sweep_outbox_job
from core.queue import enqueue
from tests.api.test_health import RedisProcess
from tests.integration.test_dev_command import (
    dev_env,
    interrupt,
    running_servers,
    start_dev,
    wait_healthy,
)
from tests.servers import ROOT

pytestmark = pytest.mark.xdist_group("heavy")

OUTAGE_S = 5


def log_events(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines of a process (INFUSION_LOG_FORMAT=json), skipping other output."""
    events = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def named(path: Path, event: str) -> list[dict[str, Any]]:
    return [e for e in log_events(path) if e.get("event") == event]


def text_of(log: Path) -> str:
    return log.read_text(errors="replace")


async def eventually(check: Callable[[], Any], what: str, within: float, log: Path) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not within {within} s:\n{text_of(log)}")


def start_command(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "api", *args],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


async def enqueue_through(redis_settings: RedisSettings) -> tuple[int, str]:
    """Enqueue a job the normal way (outbox row, pushed after COMMIT) onto another Redis."""
    pool = await create_pool(redis_settings)
    shared = queue.pool()
    queue.attach(pool)
    try:
        async with db.transaction():
            job_id = await enqueue(sweep_outbox_job)
    finally:
        queue.attach(shared)
        await pool.aclose()
    rows = await db.fetch("SELECT id FROM outbox_job WHERE job_id = {}", job_id)
    return rows[0]["id"], job_id


async def outbox_row(row_id: int) -> dict[str, Any]:
    rows = await db.fetch(
        "SELECT done_at IS NOT NULL AS done, attempts, requeues FROM outbox_job WHERE id = {}",
        row_id,
    )
    return rows[0]


async def test_worker_survives_redis_stopped_for_5_s_and_runs_a_later_job_exactly_once(
    tmp_path: Path,
):
    redis = RedisProcess(tmp_path)
    redis.start()
    log = tmp_path / "worker.log"
    env = dict(
        os.environ,
        REDIS_URL=f"redis://127.0.0.1:{redis.port}/0",
        INFUSION_LOG_FORMAT="json",
        INFUSION_LOG_LEVEL="INFO",
    )
    process = start_command(["worker"], env, log)
    try:
        # The sweeper runs at worker start: the worker is polling Redis.
        await eventually(lambda: named(log, "job.done"), "worker start", 60, log)
        redis.stop()
        await eventually(lambda: named(log, "worker.redis_lost"), "redis_lost", 10, log)
        await asyncio.sleep(OUTAGE_S)
        assert process.poll() is None, text_of(log)
        redis.start()  # same port, empty: what Redis held is gone
        await eventually(lambda: named(log, "worker.redis_back"), "redis_back", 15, log)

        row_id, job_id = await enqueue_through(RedisSettings(port=redis.port))

        def runs() -> list[dict[str, Any]]:
            return [e for e in named(log, "job.done") if e.get("row") == row_id]

        await eventually(runs, f"the job {job_id} done", 30, log)
        # One attempt begun (core.queue counts attempts as they start), never pushed again.
        assert await outbox_row(row_id) == {"done": True, "attempts": 1, "requeues": 0}
        await asyncio.sleep(2)  # a second run would show up here
        assert len(runs()) == 1
        assert process.poll() is None
        # One line per outage, however many reconnection attempts it took.
        assert len(named(log, "worker.redis_lost")) == 1
        assert len(named(log, "worker.redis_back")) == 1
        assert "Traceback" not in text_of(log)
    finally:
        stop_process(process)
        redis.stop()
    assert process.returncode == 0, text_of(log)


# ---------------------------------------------------------------- infusion dev


def dev_redis_pid(data_dir: Path) -> int:
    return int((data_dir / "redis" / "redis.pid").read_text().strip())


def sign_in(port: int) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/api/auth/login",
        json={"username": "pharmacist", "password": "infusion-demo-2026"},
        timeout=10,
    )


def health(port: int) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)


async def test_dev_keeps_its_api_up_while_its_redis_is_down_5_s_then_restarts_it(
    tmp_path: Path, data_dir: Path
):
    port = free_loopback_port()
    log = tmp_path / "dev.log"
    env = {**dev_env(data_dir), "INFUSION_LOG_FORMAT": "json", "INFUSION_LOG_LEVEL": "INFO"}
    process = start_command(["dev", "--port", str(port)], env, log)
    redis_log = data_dir / "redis" / "redis.log"
    try:
        wait_healthy(process, port, log, timeout=120)
        first_pid = dev_redis_pid(data_dir)
        # Redis dies, and cannot start again for a while: its log file is in the way.
        os.kill(first_pid, signal.SIGKILL)
        redis_log.rename(redis_log.with_suffix(".saved"))
        redis_log.mkdir()
        down_since = time.monotonic()
        while time.monotonic() - down_since < OUTAGE_S:
            answer = health(port)  # the API keeps answering, and says what is down
            assert answer.status_code == 503, answer.text
            assert answer.json()["down"] == ["redis"]
            assert process.poll() is None
            await asyncio.sleep(0.5)
        assert named(log, "dev.redis_died")
        assert named(log, "dev.redis_restart_failed")
        redis_log.rmdir()
        redis_log.with_suffix(".saved").rename(redis_log)

        seconds = wait_healthy(process, port, log, timeout=30)
        assert seconds < 20
        assert dev_redis_pid(data_dir) != first_pid
        assert len(named(log, "dev.redis_restarted")) == 1
        await eventually(lambda: named(log, "worker.redis_back"), "redis_back", 15, log)

        signed_in = sign_in(port)  # sessions and the throttle work on the new Redis
        assert signed_in.status_code == 200, signed_in.text
        # A job enqueued after recovery, onto dev's own Redis and database, runs once.
        row_id = await enqueue_on_dev(data_dir)

        def runs() -> list[dict[str, Any]]:
            return [e for e in named(log, "job.done") if e.get("row") == row_id]

        await eventually(runs, "the job done", 30, log)
        await asyncio.sleep(2)
        assert len(runs()) == 1
        assert len(named(log, "worker.redis_lost")) == 1
    finally:
        code = interrupt(process)
    assert code == 0, log.read_text()
    assert running_servers(data_dir) == []


async def enqueue_on_dev(data_dir: Path) -> int:
    """An outbox job in dev's embedded database, pushed to dev's embedded Redis (what
    `enqueue` does, by hand: this test process's own pool points at the test database)."""
    import asyncpg

    from core.embedded import EmbeddedRedis
    from core.queue import arq_job_id, redis_settings

    url = dev_database_url(data_dir)
    conn = await asyncpg.connect(url)
    try:
        row_id = await conn.fetchval(
            "INSERT INTO outbox_job (job_id, function, args, created_at, run_at, attempts,"
            " requeues, last_error) VALUES ('core.sweep_outbox', 'core.sweep_outbox', '[]',"
            " now(), now(), 0, 0, '') RETURNING id"
        )
    finally:
        await conn.close()
    pool = await create_pool(redis_settings(EmbeddedRedis(data_dir).url))
    try:
        await pool.enqueue_job("core.sweep_outbox", _job_id=arq_job_id(row_id, "core.sweep_outbox"))
    finally:
        await pool.aclose()
    return row_id


def dev_database_url(data_dir: Path) -> str:
    """The embedded PostgreSQL's socket URL, from its postmaster.pid (trust auth)."""
    lines = (data_dir / "postgres" / "postmaster.pid").read_text().splitlines()
    port, socket_dir = lines[3].strip(), lines[4].strip()
    return f"postgresql://postgres@/infusion?host={socket_dir}&port={port}"


def test_a_clean_stop_after_a_kill_9_and_restart_stops_the_embedded_postgres(
    tmp_path: Path, data_dir: Path
):
    port = free_loopback_port()
    first = start_dev(data_dir, port, tmp_path / "dev1.log")
    wait_healthy(first, port, tmp_path / "dev1.log", timeout=120)
    first.kill()  # SIGKILL: no clean-up at all; its servers keep running
    first.wait(10)
    assert running_servers(data_dir) == ["postgres", "redis"]

    log = tmp_path / "dev2.log"
    second = start_dev(data_dir, port, log)
    try:
        wait_healthy(second, port, log, timeout=60)
    finally:
        code = interrupt(second)
    assert code == 0, log.read_text()
    assert running_servers(data_dir) == []
    handles = json.loads((data_dir / "postgres" / ".handle_pids.json").read_text())
    assert handles == []


def test_dev_stops_with_one_sentence_when_its_redis_cannot_be_restarted(
    tmp_path: Path, data_dir: Path
):
    port = free_loopback_port()
    log = tmp_path / "dev.log"
    env = {**dev_env(data_dir), "INFUSION_LOG_FORMAT": "json", "INFUSION_LOG_LEVEL": "INFO"}
    process = start_command(["dev", "--port", str(port)], env, log)
    try:
        wait_healthy(process, port, log, timeout=120)
        redis_log = data_dir / "redis" / "redis.log"
        os.kill(dev_redis_pid(data_dir), signal.SIGKILL)
        redis_log.unlink()
        redis_log.mkdir()  # every restart fails: redis-server cannot open its log
        code = process.wait(90)
    finally:
        stop_process(process)
    output = text_of(log)
    assert code == 1, output
    folder = data_dir / "redis"
    assert (
        f"Error: the embedded Redis in {folder} died and could not be restarted (6 tries); "
        f"see {folder / 'redis.log'}"
    ) in output
    assert len(named(log, "dev.redis_restart_failed")) == 6
    assert running_servers(data_dir) == []
