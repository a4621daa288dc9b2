"""PostgreSQL frozen (every process SIGSTOPped): each request answers 503 `unavailable` within
3 s and /health within 2 s, and everything works again once it thaws, without a restart.

The frozen server is a private one (EmbeddedPostgres in a temporary folder), never the shared
server the other tests use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from core.embedded import EmbeddedPostgres
from tests.api.test_auth_support import PASSWORD, SESSION_COOKIE
from tests.fixtures import serve_app
from tests.servers import ROOT

FREEZE_S = 10.0
REQUEST_BOUND_S = 3.0
HEALTH_BOUND_S = 2.0


class PrivatePostgres:
    """A throwaway server whose processes (postmaster and every child) can be frozen."""

    def __init__(self, folder: Path) -> None:
        self.server = EmbeddedPostgres(folder)
        self.url = ""
        self.frozen: list[psutil.Process] = []

    def start(self) -> None:
        self.url = self.server.start()

    def processes(self) -> list[psutil.Process]:
        pid = int((self.server.pgdata / "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(pid)
        # Only ever this test's own server: its postmaster runs on this data folder.
        assert str(self.server.pgdata) in " ".join(postmaster.cmdline())
        return [postmaster, *postmaster.children(recursive=True)]

    def freeze(self) -> None:
        self.frozen = self.processes()
        for process in self.frozen:
            process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        for process in self.frozen:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGCONT)
        self.frozen = []

    def stop(self) -> None:
        self.thaw()
        self.server.stop()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    # Not under pytest's tmp_path: the server runs as another system user (when the tests run
    # as root) that must traverse the path, and every pytest run resets pytest's own base
    # folder to mode 0700. Short, too: the server's Unix socket lives in it (108-byte limit).
    folder = Path(tempfile.mkdtemp(prefix="infusion-pg-"))
    folder.chmod(0o755)
    server = PrivatePostgres(folder)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def infusion(env: dict[str, str], *args: str, stdin: str = "") -> None:
    result = subprocess.run(
        [sys.executable, "-m", "api", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


async def timed(request: asyncio.Future[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


async def fire(
    client: httpx.AsyncClient, cookie: str, token: str, login_cookie: str = ""
) -> dict[str, tuple[Any, float]]:
    """One request of each kind, all at once."""
    login_headers = {"cookie": f"{SESSION_COOKIE}={login_cookie}"} if login_cookie else {}
    requests = {
        "session": client.get("/api/auth/me", headers={"cookie": f"{SESSION_COOKIE}={cookie}"}),
        "token": client.get("/api/auth/me", headers={"authorization": f"Bearer {token}"}),
        "page": client.get("/", headers={"cookie": f"{SESSION_COOKIE}={cookie}"}),
        "login": client.post(
            "/api/auth/login",
            json={"username": "nina", "password": PASSWORD},
            headers=login_headers,
        ),
        "health": client.get("/health"),
    }
    answers = await asyncio.gather(*(timed(r) for r in requests.values()))
    client.cookies.clear()  # each request says which cookie it sends
    return dict(zip(requests, answers, strict=True))


def assert_unavailable(name: str, response: httpx.Response, elapsed: float) -> None:
    bound = HEALTH_BOUND_S if name == "health" else REQUEST_BOUND_S
    assert elapsed <= bound, f"{name} took {elapsed:.2f} s"
    assert response.status_code == 503, (name, response.text)
    if name == "health":
        body = response.json()
        assert (body["status"], body["down"]) == ("unavailable", ["database"])
        assert (body["database"]["ok"], body["redis"]["ok"]) == (False, True)
        assert body["database"]["error"] == "timeout"
        return
    assert response.headers["content-type"] == "application/problem+json", name
    assert response.json()["code"] == "unavailable", name
    assert response.headers["retry-after"] == "5", name


async def test_every_request_answers_503_in_time_while_postgres_is_frozen_and_recovers(
    private_postgres: PrivatePostgres, clean_state, tmp_path: Path
):
    env = dict(os.environ, DATABASE_URL=private_postgres.url)
    await asyncio.to_thread(infusion, env, "migrate")
    await asyncio.to_thread(
        infusion,
        env,
        *("users", "create", "--username", "nina", "--display-name", "Nina"),
        *("--role", "technician", "--password-stdin", "--no-forced-change"),
        stdin=PASSWORD + "\n",
    )
    app = await asyncio.to_thread(serve_app, env, tmp_path / "app.log")
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            login = await client.post(
                "/api/auth/login", json={"username": "nina", "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            cookie = client.cookies[SESSION_COOKIE]
            created = await client.post("/api/auth/tokens", json={"name": "monitor"})
            assert created.status_code == 201, created.text
            token = created.json()["token"]
            client.cookies.clear()
            # Every kind works before the freeze, and leaves idle connections in the pool.
            before = await fire(client, cookie, token)
            assert {name: r.status_code for name, (r, _) in before.items()} == {
                "session": 200,
                "token": 200,
                "page": 200,
                "login": 200,
                "health": 200,
            }
            # A browser that signs in again still sends its old cookie: the sign-in check of
            # the public login route then meets the outage before the login itself does.
            client.cookies.clear()
            relogin = await client.post(
                "/api/auth/login", json={"username": "nina", "password": PASSWORD}
            )
            assert relogin.status_code == 200, relogin.text
            login_cookie = client.cookies[SESSION_COOKIE]
            client.cookies.clear()

            private_postgres.freeze()
            frozen_at = time.monotonic()
            try:
                # The first round meets idle pooled connections (command timeout), the second
                # needs new ones (connect and acquire timeouts).
                for _ in range(2):
                    answers = await fire(client, cookie, token, login_cookie)
                    for name, (response, elapsed) in answers.items():
                        assert_unavailable(name, response, elapsed)
                await asyncio.sleep(max(0.0, FREEZE_S - (time.monotonic() - frozen_at)))
            finally:
                private_postgres.thaw()

            deadline = time.monotonic() + 10
            while True:
                after = await fire(client, cookie, token, login_cookie)
                statuses = {name: r.status_code for name, (r, _) in after.items()}
                if set(statuses.values()) == {200} or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            assert statuses == {
                "session": 200,
                "token": 200,
                "page": 200,
                "login": 200,
                "health": 200,
            }
            assert after["token"][0].json()["via"] == "token"
            assert after["session"][0].json()["via"] == "session"
        assert "Traceback" not in app.log()
    finally:
        app.stop()
