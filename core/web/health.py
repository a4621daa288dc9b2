"""`GET /health`: is this process able to serve, and which part is down if not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from core.db import ping_database
from core.errors import ServiceUnavailableError
from core.web.sessions import NO_CALLER

# A load balancer gives /health 2 s. Both checks run concurrently and the answer leaves when
# this budget is spent, whatever a check is still waiting for (a frozen server can make even
# the clean-up of a timed-out query wait), so it is well inside those 2 s.
CHECK_BUDGET_S = 1.5


class PartHealth(msgspec.Struct):
    ok: bool
    ms: float
    error: str | None = None


class Health(msgspec.Struct):
    status: str
    database: PartHealth
    redis: PartHealth
    down: list[str]


async def _timed(check: Awaitable[Any]) -> PartHealth:
    started = time.perf_counter()
    try:
        await check
    except Exception as exc:
        # DatabaseUnavailableError wraps what happened (refused, dropped, timed out): name that.
        cause = exc.__cause__ if isinstance(exc, ServiceUnavailableError) and exc.__cause__ else exc
        error = "timeout" if isinstance(cause, TimeoutError) else type(cause).__name__
        return PartHealth(ok=False, ms=_ms_since(started), error=error)
    return PartHealth(ok=True, ms=_ms_since(started))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _forget(task: asyncio.Task[Any]) -> None:
    # A check still running when the budget ends finishes on its own (each wait inside it
    # is bounded); it is not awaited, so its outcome is only read to keep asyncio quiet.
    if not task.cancelled():
        task.exception()


async def check_health(state: State) -> Health:
    tasks = {
        "database": asyncio.ensure_future(_timed(ping_database())),
        "redis": asyncio.ensure_future(_timed(state.redis.ping())),
    }
    await asyncio.wait(tasks.values(), timeout=CHECK_BUDGET_S)
    parts: dict[str, PartHealth] = {}
    for name, task in tasks.items():
        if task.done():
            parts[name] = task.result()
        else:
            task.cancel()
            task.add_done_callback(_forget)
            parts[name] = PartHealth(ok=False, ms=CHECK_BUDGET_S * 1000, error="timeout")
    down = [name for name, part in parts.items() if not part.ok]
    return Health(
        status="unavailable" if down else "ok",
        database=parts["database"],
        redis=parts["redis"],
        down=down,
    )


class HealthController(Controller):
    path = "/health"
    tags = ["system"]
    # Load balancers and monitors, never a person: no session, no sign-in check (which would
    # cost a database query, and a frozen database would spend the 2 s on it).
    opt = {"public": True, NO_CALLER: True}

    @get(
        operation_id="getHealth",
        summary="Health of this process, the database and Redis",
        description="200 when every part answers; 503 with `down` naming the parts that do not.",
        cache=False,
        # Its 503 is this report, not a problem body (core.web.openapi leaves it so).
        responses={
            HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(
                Health, description="A part is down; `down` names it.", generate_examples=False
            )
        },
    )
    async def health(self, state: State) -> Response[Health]:
        health = await check_health(state)
        return Response(
            health, status_code=HTTP_503_SERVICE_UNAVAILABLE if health.down else HTTP_200_OK
        )
