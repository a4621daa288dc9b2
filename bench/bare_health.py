"""The baseline of `python -m bench health`: a bare Litestar app with one `GET /health`.

It answers the same JSON shape as the product's `/health` (the same fields in the same order)
with constant values: no middleware, no database, no Redis, no request logging.

It is served by the product's own `infusion serve` command with the app factory swapped for
this one, so uvicorn runs with exactly the product's options (whatever api/cli.py passes to
`uvicorn.run`) and the standard library logging is configured by the product's
`configure_logging` at INFUSION_LOG_LEVEL. The ratio of the two sides is then the cost of what
the product adds to a request, nothing else. `GET /bench-bare` answers 204 so the benchmark
can check it measures this app and not the product.

    DATABASE_URL=… REDIS_URL=… INFUSION_LOG_LEVEL=WARNING python -m bench.bare_health --port 8001

(DATABASE_URL and REDIS_URL are resolved by `infusion serve` as usual but never used.)
"""

from __future__ import annotations

import argparse
import sys
import types
from typing import Any

from litestar import Litestar, Response, get

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


def create_bare_app() -> Litestar:
    return Litestar(route_handlers=[health, marker], logging_config=None, debug=False)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_health")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()

    from core.logging import configure_logging

    def create_app(settings: Any, **_: Any) -> Litestar:
        configure_logging(level=settings.log_level, fmt=settings.log_format)
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
