"""The baselines of `python -m bench health`: bare Litestar apps with one `GET /health`.

Both answer the same JSON shape as the product's `/health` (the same fields in the same order)
with no middleware and no request logging:

- `bare` (the default) answers constant values: no database, no Redis;
- `--io` does the I/O the product's check does and nothing more: `SELECT 1` on an asyncpg pool
  created with asyncpg's defaults (so its connections are reset on every release, as the
  product's are) and of the product's size, then a Redis `PING` through the product's client
  (core.redis.make_redis), timing each. No timeouts, no tasks, no ORM.

It is served by the product's own `infusion serve` command with the app factory swapped for
this one, so uvicorn runs with exactly the product's options (api/server.py's
`uvicorn_config`, its protocol limits included) and the standard library logging is
configured by the product's `configure_logging` at INFUSION_LOG_LEVEL. The ratio of the two
sides is then the cost of what the product adds to a request, nothing else. `GET /bench-bare`
answers 204 so the benchmark can check it measures this app and not the product.

    DATABASE_URL=… REDIS_URL=… INFUSION_LOG_LEVEL=WARNING python -m bench.bare_health --port 8001
    DATABASE_URL=… REDIS_URL=… python -m bench.bare_health --io --port 8002

(DATABASE_URL and REDIS_URL are resolved by `infusion serve` as usual; only `--io` uses them.)
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Response, get
from litestar.datastructures import State

# The product's own response types, so both sides encode exactly the same structure.
from core.web.health import Health, PartHealth

MARKER_PATH = "/bench-bare"


@get("/health", cache=False)
async def health() -> Response[Health]:
    # Built per request, as the product does, so both sides pay for encoding the same struct.
    return Response(
        Health(
            status="ok",
            database=PartHealth(ok=True, ms=0.4),
            redis=PartHealth(ok=True, ms=0.2),
            down=[],
        ),
        status_code=200,
    )


@get(MARKER_PATH, status_code=204, cache=False)
async def marker() -> None:
    return None


# The product's pool size (api/app.py opens core.db's pool with max_size=10, min_size=0).
POOL_MAX_SIZE = 10


@get("/health", cache=False)
async def io_health(state: State) -> Response[Health]:
    started = time.perf_counter()
    await state.pool.fetchval("SELECT 1")
    database_ms = round((time.perf_counter() - started) * 1000, 1)
    started = time.perf_counter()
    await state.redis.ping()
    redis_ms = round((time.perf_counter() - started) * 1000, 1)
    return Response(
        Health(
            status="ok",
            database=PartHealth(ok=True, ms=database_ms),
            redis=PartHealth(ok=True, ms=redis_ms),
            down=[],
        ),
        status_code=200,
    )


def create_bare_app() -> Litestar:
    return Litestar(route_handlers=[health, marker], logging_config=None, debug=False)


def create_io_app(database_url: str, redis_url: str) -> Litestar:
    import asyncpg

    from core.redis import make_redis

    @asynccontextmanager
    async def resources(app: Litestar) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(
            dsn=database_url, min_size=0, max_size=POOL_MAX_SIZE
        )
        app.state.redis = make_redis(redis_url)
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await app.state.pool.close()

    return Litestar(
        route_handlers=[io_health, marker],
        lifespan=[resources],
        logging_config=None,
        debug=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_health")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--io", action="store_true", help="SELECT 1 and a Redis PING per request, as /health"
    )
    options = parser.parse_args()

    from core.logging import configure_logging

    def create_app(settings: Any, **_: Any) -> Litestar:
        configure_logging(level=settings.log_level, fmt=settings.log_format)
        if options.io:
            return create_io_app(settings.database_url, settings.redis_url)
        return create_bare_app()

    # `infusion serve` imports create_app from api.app when it runs: it gets this one. A
    # stand-in module rather than patching the real one, which would import the whole product.
    stand_in = types.ModuleType("api.app")
    stand_in.create_app = create_app  # type: ignore[attr-defined]
    sys.modules["api.app"] = stand_in

    from api.cli import main as infusion

    infusion(["serve", "--host", options.host, "--port", str(options.port)], prog_name="infusion")


if __name__ == "__main__":
    main()
