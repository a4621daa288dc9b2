"""The request-body deadline (api.middleware.body_timeout_middleware) with short timeouts, on a
small Litestar app with the product's error handlers: a body that pauses too long, and one
trickled in a piece at a time, each piece in time, both end in a 408 problem."""

from __future__ import annotations

import asyncio
import json
import time

from litestar import Litestar, Request, post

from api.middleware import body_timeout_middleware
from core.web.errors import EXCEPTION_HANDLERS


@post("/echo")
async def echo(request: Request) -> dict:
    return {"bytes": len(await request.body())}


async def call(app, pieces) -> tuple[int, dict, float]:
    """POST /echo, its body sent by `pieces` (an async iterator of (delay, bytes, more))."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/echo",
        "raw_path": b"/echo",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"test"), (b"content-type", b"application/octet-stream")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    source = pieces()
    sent: list[dict] = []

    async def receive() -> dict:
        try:
            delay, body, more = await anext(source)
        except StopAsyncIteration:
            await asyncio.sleep(3600)  # a client that just stops
        await asyncio.sleep(delay)
        return {"type": "http.request", "body": body, "more_body": more}

    async def send(message: dict) -> None:
        sent.append(message)

    started = time.monotonic()
    await app(scope, receive, send)
    seconds = time.monotonic() - started
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body), seconds


def guarded() -> object:
    app = Litestar([echo], exception_handlers=EXCEPTION_HANDLERS, logging_config=None)
    return body_timeout_middleware(app, idle=0.3, total=1.2)


async def test_a_body_in_time_is_read():
    async def pieces():
        for _ in range(3):
            yield 0.05, b"ab", True
        yield 0.05, b"c", False

    status, body, _ = await call(guarded(), pieces)
    assert (status, body) == (201, {"bytes": 7})


async def test_a_pause_longer_than_idle_is_a_408():
    async def pieces():
        yield 0.0, b"ab", True

    status, body, seconds = await call(guarded(), pieces)
    assert status == 408
    assert (body["code"], body["detail"]) == (
        "request_timeout",
        "The request body stopped arriving for 0.3 seconds.",
    )
    assert 0.25 <= seconds < 1.0


async def test_a_body_trickled_in_each_piece_in_time_is_a_408_at_the_total():
    async def pieces():
        while True:
            yield 0.2, b"a", True

    status, body, seconds = await call(guarded(), pieces)
    assert status == 408
    assert body["detail"] == "The request body did not arrive within 1.2 seconds."
    assert 1.1 <= seconds < 1.8
