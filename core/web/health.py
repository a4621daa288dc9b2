"""`GET /health`: is this process able to serve, and which part is down if not."""

from __future__ import annotations

import asyncio
import time

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from core.db import ping_database
from core.web.sessions import NO_CALLER

CHECK_TIMEOUT_S = 2.0


class PartHealth(msgspec.Struct):
    ok: bool
    ms: float
    error: str | None = None


class Health(msgspec.Struct):
    status: str
    database: PartHealth
    redis: PartHealth
    down: list[str]


async def _timed(check: object) -> PartHealth:
    started = time.perf_counter()
    try:
        # asyncio.timeout rather than wait_for: no extra task per check (docs/benchmarks.md).
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await check  # type: ignore[misc]
    except TimeoutError:
        return PartHealth(
            ok=False, ms=round((time.perf_counter() - started) * 1000, 1), error="timeout"
        )
    except Exception as exc:
        return PartHealth(
            ok=False, ms=round((time.perf_counter() - started) * 1000, 1), error=type(exc).__name__
        )
    return PartHealth(ok=True, ms=round((time.perf_counter() - started) * 1000, 1))


async def check_health(state: State) -> Health:
    database, redis = await asyncio.gather(_timed(ping_database()), _timed(state.redis.ping()))
    down = [name for name, part in (("database", database), ("redis", redis)) if not part.ok]
    return Health(status="unavailable" if down else "ok", database=database, redis=redis, down=down)


class HealthController(Controller):
    path = "/health"
    tags = ["system"]
    # Load balancers and monitors, never a person: no session, no sign-in check.
    opt = {"public": True, NO_CALLER: True}

    @get(
        operation_id="getHealth",
        summary="Health of this process, the database and Redis",
        description="200 when every part answers; 503 with `down` naming the parts that do not.",
        cache=False,
    )
    async def health(self, state: State) -> Response[Health]:
        health = await check_health(state)
        return Response(
            health, status_code=HTTP_503_SERVICE_UNAVAILABLE if health.down else HTTP_200_OK
        )
