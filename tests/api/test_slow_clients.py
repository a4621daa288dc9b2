"""Slow and half-open clients cannot starve the served app (api/server.py): deadlines for
headers, bodies and idle connections, and a cap on connections.

Heavy (hundreds of sockets, waits of 5-15 s): one xdist group, so these never run beside the
other heavy tests.
"""

from __future__ import annotations

import contextlib
import socket
import time

import httpx
import pytest

from api.server import BODY_IDLE_TIMEOUT, HEADER_TIMEOUT, KEEP_ALIVE_TIMEOUT, MAX_CONNECTIONS
from tests.api import raw_http

pytestmark = pytest.mark.xdist_group("heavy")

HALF_A_REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Waiting: "
# Slack for a busy two-core machine.
SLACK = 3.0


@contextlib.contextmanager
def open_sockets(base_url: str, count: int, data: bytes = b"") -> list[socket.socket]:
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = raw_http.connect(base_url, timeout=HEADER_TIMEOUT + SLACK)
            if data:
                sock.sendall(data)
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def test_500_half_open_connections_do_not_stop_health_and_are_timed_out(served_app):
    started = time.monotonic()
    with open_sockets(served_app.url, 500, HALF_A_REQUEST) as half_open:
        health_started = time.monotonic()
        health = httpx.get(served_app.url + "/health", timeout=5)
        health_seconds = time.monotonic() - health_started

        assert health.status_code == 200
        assert health.json()["down"] == []
        assert health_seconds < 1.0, health_seconds

        # Every half-open connection is answered 408 once its headers are overdue, then closed.
        first = raw_http.read_response(half_open[0])
        assert first.status == 408
        assert first.headers["content-type"] == "application/problem+json"
        assert first.headers["connection"] == "close"
        body = first.json()
        assert body.pop("request_id") == first.headers["x-request-id"]
        assert body == {
            "type": "about:blank#request_timeout",
            "title": "Request timeout",
            "status": 408,
            "detail": "The request's headers did not arrive within 10 seconds.",
            "code": "request_timeout",
        }
        assert HEADER_TIMEOUT - 1 <= time.monotonic() - started <= HEADER_TIMEOUT + SLACK
        assert raw_http.closed_by_server(half_open[0])
        for sock in half_open[1:]:
            assert raw_http.read_response(sock).status == 408
            assert raw_http.closed_by_server(sock)


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(served_app):
    with open_sockets(served_app.url, 1) as [silent]:
        started = time.monotonic()
        assert silent.recv(1024) == b""
        assert HEADER_TIMEOUT - 1 <= time.monotonic() - started <= HEADER_TIMEOUT + SLACK


def test_headers_sent_a_byte_at_a_time_still_meet_the_deadline(served_app):
    """Slowloris: each byte arrives in time, the headers as a whole do not."""
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
    with raw_http.connect(served_app.url, timeout=HEADER_TIMEOUT + SLACK) as sock:
        started = time.monotonic()
        sock.settimeout(1.0)
        answer = b""
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            with contextlib.suppress(TimeoutError):
                answer += sock.recv(65536)
            if answer:
                break
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert time.monotonic() - started <= HEADER_TIMEOUT + SLACK


def test_a_body_that_stops_arriving_is_a_408_problem(served_app):
    request = (
        b"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        b'{"username": "te'
    )
    with raw_http.connect(served_app.url, timeout=BODY_IDLE_TIMEOUT + SLACK) as sock:
        sock.sendall(request)
        started = time.monotonic()
        response = raw_http.read_response(sock)
        waited = time.monotonic() - started

        assert response.status == 408
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert (body["code"], body["detail"], body["instance"]) == (
            "request_timeout",
            "The request body stopped arriving for 15 seconds.",
            "/api/auth/login",
        )
        assert BODY_IDLE_TIMEOUT - 1 <= waited <= BODY_IDLE_TIMEOUT + SLACK
        assert raw_http.closed_by_server(sock)


def test_an_idle_kept_alive_connection_is_closed(served_app):
    with raw_http.connect(served_app.url, timeout=KEEP_ALIVE_TIMEOUT + SLACK) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert raw_http.read_response(sock).status == 200
        started = time.monotonic()
        assert raw_http.closed_by_server(sock)
        assert time.monotonic() - started <= KEEP_ALIVE_TIMEOUT + SLACK


def test_a_body_the_app_did_not_read_cannot_be_trickled_in_after_the_answer(served_app):
    """/health reads no body: it answers, and the connection does not wait for the rest."""
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\nab"
    with raw_http.connect(served_app.url, timeout=15) as sock:
        sock.sendall(request)
        assert raw_http.read_response(sock).status == 200
        started = time.monotonic()
        closed = False
        while not closed and time.monotonic() - started < 12:
            try:
                sock.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(1.0)
            closed = raw_http.closed_by_server(sock)
        assert closed
        assert time.monotonic() - started <= 5 + SLACK


def test_connections_beyond_the_cap_get_a_503_problem_at_once(served_app):
    with open_sockets(served_app.url, MAX_CONNECTIONS):
        time.sleep(0.5)  # the server accepts them all
        started = time.monotonic()
        refused = raw_http.exchange(served_app.url, raw_http.get("/health"), timeout=5)

        assert refused.status == 503
        assert refused.headers["retry-after"] == "5"
        assert refused.json()["code"] == "busy"
        assert refused.json()["detail"] == "The server is busy; try again in a moment."
        assert time.monotonic() - started < 2

    # Once they are gone, the server answers again.
    deadline = time.monotonic() + 5
    while True:
        response = raw_http.exchange(served_app.url, raw_http.get("/health"), timeout=5)
        if response.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert response.status == 200
