"""What benchmarks stand on: a dedicated database and Redis, and apps served on loopback.

`bench_backends()` decides which PostgreSQL and Redis a benchmark uses: DATABASE_URL / REDIS_URL
when set; else the servers on 127.0.0.1:5432 / 6379 when they answer (a database
`infusion_bench` is created there, so a benchmark never touches development or test data);
else embedded servers under `.infusion/bench`. `migrate()` applies the product's migrations.

`serve()` starts a process that serves HTTP on a free loopback port, its output in a log file;
`wait_ready()` waits until it answers. Processes are stopped by the `Served` objects that
started them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.registry import BenchmarkError
from core.embedded import free_loopback_port, reachable, stop_process, with_database

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE = "infusion_bench"
LOCAL_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


# ------------------------------------------------------------------ PostgreSQL and Redis


async def _create_database(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@dataclass(frozen=True)
class Backends:
    database_url: str
    redis_url: str
    where: str  # for the report: "DATABASE_URL", "local 127.0.0.1:5432", "embedded"


@contextmanager
def bench_backends() -> Iterator[Backends]:
    from core.embedded import start_servers
    from core.errors import ConfigurationError

    database_url = os.environ.get("DATABASE_URL", "").strip() or None
    redis_url = os.environ.get("REDIS_URL", "").strip() or None
    where = "DATABASE_URL" if database_url else ""
    try:
        if not database_url and reachable("127.0.0.1", 5432):
            asyncio.run(_create_database(LOCAL_PG_ADMIN, BENCH_DATABASE))
            database_url = with_database(LOCAL_PG_ADMIN, BENCH_DATABASE)
            where = f"PostgreSQL 127.0.0.1:5432/{BENCH_DATABASE}"
        if not redis_url and reachable("127.0.0.1", 6379):
            redis_url = LOCAL_REDIS
        servers = start_servers(
            database_url=database_url, redis_url=redis_url, data_dir=ROOT / ".infusion" / "bench"
        )
    except (ConfigurationError, OSError) as exc:
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        raise BenchmarkError(f"no database for the benchmark: {message}", exit_code=2) from None
    if not where:
        where = "embedded PostgreSQL under .infusion/bench"
    try:
        yield Backends(servers.database_url, servers.redis_url, where)
    finally:
        servers.stop()


def migrate(backends: Backends) -> None:
    """Apply the product's migrations (idempotent), as `infusion migrate` does."""
    from api.migrations import run_migrations
    from core.errors import ConfigurationError

    try:
        asyncio.run(run_migrations(backends.database_url))
    except ConfigurationError as exc:
        raise BenchmarkError(exc.message, exit_code=2) from None


# ------------------------------------------------------------------ served processes


@dataclass
class Served:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_lines(self) -> int:
        try:
            with self.log_path.open("rb") as f:
                return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        except OSError:
            return 0

    def stop(self) -> None:
        stop_process(self.process)


def serve(name: str, command: list[str], env: dict[str, str], log_path: Path) -> Served:
    """Start `command` (which must serve on `{port}`) with its output in `log_path`."""
    port = free_loopback_port()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(  # noqa: S603 (our own commands)
            [part.format(port=port) for part in command],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return Served(name=name, port=port, process=process, log_path=log_path)


def get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(served: Served, path: str = "/health", timeout: float = 120.0) -> tuple[int, bytes]:
    """Wait until `path` answers (any status); return the first answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not served.alive():
            raise BenchmarkError(
                f"{served.name} exited with {served.process.returncode} while starting:\n"
                f"{served.log_tail()}"
            )
        try:
            return get(served.url + path, timeout=1.0)
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise BenchmarkError(
        f"{served.name} did not answer on {path} within {timeout:g} s:\n{served.log_tail()}"
    )
