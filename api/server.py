"""How uvicorn serves the app: the one configuration `infusion serve` and `infusion dev` share.

What it protects against. A client that opens a connection and sends half a request (or
nothing), or sends its headers a byte every few seconds ("slowloris"), costs nothing to send
and holds a connection on our side; enough of them and the server has no room for anyone
else. uvicorn closes idle keep-alive connections but has no deadline for a request's headers,
no cap on open connections and no limit on the request line. So:

- a request's line and headers must arrive within `HEADER_TIMEOUT` of its first byte (of the
  connection, for the first request); otherwise 408 and the connection is closed;
- a request body may pause at most `BODY_IDLE_TIMEOUT` between two pieces while the app
  waits for it, and must be complete `BODY_TOTAL_TIMEOUT` after the app first asked for it
  (api.middleware.body_timeout_middleware answers 408); the rest of a body the app did
  not read is dropped for `DRAIN_TIMEOUT` after the answer, then the connection closes, so
  it cannot be trickled in for ever;
- an idle connection between requests is closed after `KEEP_ALIVE_TIMEOUT`;
- at most `MAX_CONNECTIONS` connections (and requests in progress) per process: the next one
  is answered 503 and closed at once;
- the request target (path and query string) is at most `MAX_TARGET_BYTES` (414) and the
  headers together at most `MAX_HEADER_BYTES` (431).

Every such answer, and uvicorn's own 400 for a request that is not HTTP, is
`application/problem+json` like the app's. A reverse proxy in front should still do the same
(docs/operations.md): these limits keep one process alive, they do not make it a proxy.
"""

from __future__ import annotations

import asyncio
import json
import resource
import uuid
from typing import Any

from uvicorn import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.logging import get_logger
from core.settings import Settings
from core.web.errors import PROBLEM_JSON, TITLES

log = get_logger(__name__)

HEADER_TIMEOUT = 10.0
BODY_IDLE_TIMEOUT = 15.0
# A minute for the whole body: ten times what our largest form needs on a slow mobile link.
BODY_TOTAL_TIMEOUT = 60.0
KEEP_ALIVE_TIMEOUT = 5
DRAIN_TIMEOUT = 5.0
MAX_CONNECTIONS = 1000
# 16 KiB: browsers and proxies commonly stop at 8-16 KiB; nothing of ours needs more (a
# `next=` path is capped at 2,000 characters).
MAX_TARGET_BYTES = 16 * 1024
MAX_HEADER_BYTES = 64 * 1024
# Descriptors beyond the connections: the database pool, Redis, log and static files.
_SPARE_FILES = 256


def uvicorn_config(settings: Settings, *, host: str, port: int, app: Any) -> Config:
    """The server's configuration; `app` is the Litestar app (create_app)."""
    _raise_open_file_limit(MAX_CONNECTIONS + _SPARE_FILES)
    trusted = list(settings.trusted_proxies)
    return Config(
        app,
        host=host,
        port=port,
        http=GuardedHttpToolsProtocol,
        lifespan="on",
        log_config=None,
        # api.middleware logs every request with its request id.
        access_log=False,
        # X-Forwarded-For / -Proto are believed only from the proxies named in
        # INFUSION_TRUSTED_PROXIES (uvicorn would trust 127.0.0.1 by default, which lets any
        # local process forge its address). Without any, the peer is the client.
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted,
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
    )


def _raise_open_file_limit(wanted: int) -> None:
    # A soft limit of 1,024 open files (a common default) would make accept() fail before
    # MAX_CONNECTIONS is reached, and then even /health goes unanswered.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _problem(status: int, detail: str, *, code: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and a problem+json body (like core.web.errors.problem) for an answer given
    before the app sees the request; the connection is closed after it."""
    request_id = uuid.uuid4().hex
    body = json.dumps(
        {
            "type": f"about:blank#{code}",
            "title": TITLES.get(status, "Error"),
            "status": status,
            "detail": detail,
            "code": code,
            "request_id": request_id,
        }
    ).encode()
    log.warning("server.refused", status=status, code=code, request_id=request_id)
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"cache-control", b"no-store"),
        (b"connection", b"close"),
    ]
    if status == 503:
        headers.append((b"retry-after", b"5"))
    return headers, body


def _response_bytes(status: int, detail: str, *, code: str) -> bytes:
    headers, body = _problem(status, detail, code=code)
    head = [f"HTTP/1.1 {status} {TITLES.get(status, 'Error')}".encode()]
    head += [name + b": " + value for name, value in headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines and limits this module describes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._drain_timer: asyncio.TimerHandle | None = None
        self._reading_headers = False
        self._header_bytes = 0
        self._refused = False

    # ---------------------------------------------------------------- connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > MAX_CONNECTIONS:
            self._refuse(503, "The server is busy; try again in a moment.", code="busy")
            return
        # A connection that never sends a complete request is closed after HEADER_TIMEOUT.
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        self._cancel_drain_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to bytes that are not HTTP (plain text there); problem+json here.
        if not self._refused:
            self._refuse(400, "The request is not valid HTTP/1.1.", code="bad_request")

    # ---------------------------------------------------------------- parser callbacks
    # Once a request is refused, the rest of what arrived in the same read still goes through
    # the parser; every callback then does nothing, so no ASGI task starts for it.

    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self._reading_headers = True
        self._header_bytes = 0
        if self._header_timer is None:  # a later request on a kept-alive connection
            self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        super().on_url(url)
        if len(self.url) > MAX_TARGET_BYTES:
            self._refuse(
                414,
                f"The address is longer than {MAX_TARGET_BYTES:,} bytes; send long values in "
                "a request body instead.",
                code="uri_too_long",
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        super().on_header(name, value)
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refuse(
                431,
                f"The request headers are larger than {MAX_HEADER_BYTES:,} bytes together.",
                code="headers_too_large",
            )

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._reading_headers = False
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel_drain_timer()
        if not self._refused:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()
        # The app answered without reading the whole body (a 413, a 401 before the body): the
        # rest is read and dropped for DRAIN_TIMEOUT at most, then the connection closes, so a
        # client cannot trickle a huge body in for ever. Closing at once would make the
        # kernel reset the connection on the unread bytes, which can destroy the answer on
        # its way to the client.
        if cycle is not None and cycle.more_body and not self.transport.is_closing():
            self._drain_timer = self.loop.call_later(DRAIN_TIMEOUT, self._close)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if len(self.tasks) >= MAX_CONNECTIONS:
            app = _busy
        super()._start_asgi_task(cycle, app)

    # ---------------------------------------------------------------- deadlines

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(HEADER_TIMEOUT, self._header_timeout)

    def _cancel_drain_timer(self) -> None:
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None

    def _close(self) -> None:
        self._drain_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if not self._reading_headers:
            # Connected and sent nothing: nobody is waiting for an answer.
            self.transport.close()
            return
        self._refuse(
            408,
            f"The request's headers did not arrive within {HEADER_TIMEOUT:g} seconds.",
            code="request_timeout",
        )

    def _refuse(self, status: int, detail: str, *, code: str) -> None:
        """Answer `status` and close, before the app has seen this request."""
        self._refused = True
        self._cancel_header_timer()
        if self.transport.is_closing():
            return
        # A pipelined request arriving while an earlier answer is still being written: that
        # answer cannot be interleaved with ours, so the connection just ends.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_response_bytes(status, detail, code=code))
        self.transport.close()


async def _busy(scope: Any, receive: Any, send: Any) -> None:
    """Too many requests in progress (uvicorn's limit_concurrency, as problem+json)."""
    headers, body = _problem(503, "The server is busy; try again in a moment.", code="busy")
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
