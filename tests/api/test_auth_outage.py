"""With PostgreSQL or Redis down, sign-in checks answer 503, not 500, and /health still works
for a caller that sends credentials (a staff browser's cookie, a monitoring token)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from core.embedded import free_loopback_port
from tests.api.test_auth_support import SESSION_COOKIE
from tests.api.test_health import RedisProcess
from tests.fixtures import serve_app

TOKEN_SHAPED = "inf_0123abcd_" + "a" * 43


def test_guarded_routes_answer_503_and_health_still_reports_when_servers_are_down(
    clean_state, tmp_path: Path
):
    redis = RedisProcess(tmp_path)
    redis.start()
    closed_port = free_loopback_port()  # nothing listens here
    env = dict(
        os.environ,
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{closed_port}/nothing",
        REDIS_URL=f"redis://127.0.0.1:{redis.port}/0",
    )
    app = serve_app(env, tmp_path / "app.log")
    bearer = {"authorization": f"Bearer {TOKEN_SHAPED}"}
    cookie = {"cookie": f"{SESSION_COOKIE}={'c' * 64}"}
    try:
        # PostgreSQL down: a token cannot be checked.
        me = httpx.get(app.url + "/api/auth/me", headers=bearer, timeout=10)
        assert me.status_code == 503, me.text
        assert me.headers["content-type"] == "application/problem+json"
        # The one 503 shape, as from every outage: code `unavailable` and Retry-After.
        assert (me.json()["code"], me.json()["detail"], me.headers["retry-after"]) == (
            "unavailable",
            "Sign-in cannot be checked right now: the database or Redis is not answering.",
            "5",
        )
        health = httpx.get(app.url + "/health", headers=bearer, timeout=10)
        assert health.status_code == 503
        assert health.json()["down"] == ["database"]

        # Redis down as well: a session cannot be read.
        redis.stop()
        me = httpx.get(app.url + "/api/auth/me", headers=cookie, timeout=10)
        assert me.status_code == 503, me.text
        assert (me.json()["code"], me.headers["retry-after"]) == ("unavailable", "5")
        health = httpx.get(app.url + "/health", headers=cookie, timeout=10)
        assert health.status_code == 503
        assert health.json()["down"] == ["database", "redis"]
        assert "set-cookie" not in health.headers
        assert "Traceback" not in app.log()
    finally:
        app.stop()
        redis.stop()
