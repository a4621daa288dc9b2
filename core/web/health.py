"""`GET /health`: is this process able to serve, and which part is down if not."""

from __future__ import annotations

import asyncio
import time

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from core import db

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
        await asyncio.wait_for(check, CHECK_TIMEOUT_S)  # type: ignore[arg-type]
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
    database, redis = await asyncio.gather(_timed(db.fetch("SELECT 1")), _timed(state.redis.ping()))
    down = [name for name, part in (("database", database), ("redis", redis)) if not part.ok]
    return Health(status="unavailable" if down else "ok", database=database, redis=redis, down=down)


class HealthController(Controller):
    path = "/health"
    tags = ["system"]
    opt = {"public": True}

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
