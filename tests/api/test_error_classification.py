"""Only PostgreSQL or Redis not answering is an outage (503 `unavailable`, Retry-After).

A printer's, a serial device's or a carrier's failure is its own error with its own code and
sentence; a bare socket error or time-out from anywhere else is a bug (a logged 500); a value
PostgreSQL refuses is the caller's (400) only when it was a bound argument.

Each route below makes the failure happen for real (a refused connection on a closed loopback
port, a query on the test database) inside a small app that uses the product's exception
handlers, so the classification is tested on the exceptions the libraries actually raise.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from litestar import get
from litestar.testing import TestClient, create_test_client
from redis.asyncio import Redis
from structlog.testing import capture_logs

from core.embedded import free_loopback_port
from core.errors import ExternalServiceError, translate_outside_errors
from core.web.errors import EXCEPTION_HANDLERS

OUTAGE_SENTENCE = "The database or Redis is not answering; try again in a moment."
PRINTER_SENTENCE = "The label printer at bench 2 did not answer; check that it is on and online."


class PrinterUnavailableError(ExternalServiceError):
    """What a printing adapter raises (the context defines its own, like this)."""

    code = "printer_unavailable"


class DeviceUnavailableError(ExternalServiceError):
    code = "device_unavailable"
    status = 503


def _connect_to_nothing(port: int) -> None:
    """A device's raw socket, as an adapter opens it: refused, nothing listens there."""
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


CLOSED_PORT = free_loopback_port()


@get("/printer", sync_to_thread=False)
def printer() -> None:
    with translate_outside_errors(PrinterUnavailableError, PRINTER_SENTENCE):
        _connect_to_nothing(CLOSED_PORT)


@get("/serial")
async def serial_device() -> None:
    class SerialException(OSError):  # pyserial's is an IOError (= OSError) too
        pass

    async def read_logger() -> None:
        raise SerialException("device reports readiness to read but returned no data")

    with translate_outside_errors(
        DeviceUnavailableError, "The temperature logger on port 3 stopped answering."
    ):
        await read_logger()


@get("/bare-socket-error", sync_to_thread=False)
def bare_socket_error() -> None:
    _connect_to_nothing(CLOSED_PORT)  # an adapter that forgot to translate: a bug


@get("/bare-timeout")
async def bare_timeout() -> None:
    await asyncio.wait_for(asyncio.sleep(1), 0.01)  # a carrier call timing out, untranslated


@get("/postgres-refused")
async def postgres_refused() -> None:
    # asyncpg raises the bare ConnectionRefusedError here: an outage by where it came from.
    await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{CLOSED_PORT}/nothing", timeout=2)


@get("/postgres-connection-error")
async def postgres_connection_error() -> None:
    raise asyncpg.exceptions.ConnectionFailureError("the server closed the connection")


@get("/redis-refused")
async def redis_refused() -> None:
    client = Redis(host="127.0.0.1", port=CLOSED_PORT, socket_connect_timeout=1)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _query(sql: str, *args: Any) -> None:
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        await conn.fetch(sql, *args)
    finally:
        await conn.close()


@get("/class22/from-the-query")
async def class22_from_query() -> None:
    await _query("SELECT count(*) / 0 FROM outbox_job")  # 22012, no request value involved


@get("/class22/bound-nul")
async def class22_bound_nul() -> None:
    await _query("SELECT $1::text", "a\x00b")  # 22021 while binding the argument


@get("/class22/bound-out-of-range")
async def class22_bound_out_of_range() -> None:
    await _query("SELECT $1::int8", 2**63)  # asyncpg's own check of the argument


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient[Any]]:
    with create_test_client(
        route_handlers=[
            printer,
            serial_device,
            bare_socket_error,
            bare_timeout,
            postgres_refused,
            postgres_connection_error,
            redis_refused,
            class22_from_query,
            class22_bound_nul,
            class22_bound_out_of_range,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        raise_server_exceptions=False,
    ) as test_client:
        yield test_client


def body_of(response: Any) -> tuple[int, str, str, str | None]:
    body = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    return (response.status_code, body["code"], body["detail"], response.headers.get("retry-after"))


def test_a_printer_that_does_not_answer_is_its_own_502_not_an_outage(client):
    with capture_logs() as logs:
        response = client.get("/printer")
    assert body_of(response) == (502, "printer_unavailable", PRINTER_SENTENCE, None)
    assert response.json()["title"] == "Bad gateway"
    assert [(e["event"], e["code"], e["cause_type"]) for e in logs] == [
        ("request.external_failure", "printer_unavailable", "ConnectionRefusedError")
    ]


def test_a_serial_device_error_keeps_the_devices_own_code_and_status(client):
    assert body_of(client.get("/serial")) == (
        503,
        "device_unavailable",
        "The temperature logger on port 3 stopped answering.",
        None,
    )


@pytest.mark.parametrize("path", ["/bare-socket-error", "/bare-timeout"])
def test_a_socket_error_or_timeout_from_outside_the_database_is_a_logged_500(client, path):
    with capture_logs() as logs:
        response = client.get(path)
    assert body_of(response) == (500, "internal", "An internal error occurred.", None)
    assert [e["event"] for e in logs] == ["request.unhandled"]


@pytest.mark.parametrize(
    ("path", "error_type"),
    [
        ("/postgres-refused", "ConnectionRefusedError"),
        ("/postgres-connection-error", "ConnectionFailureError"),
        ("/redis-refused", "ConnectionError"),
    ],
)
def test_the_database_or_redis_not_answering_is_the_503_with_retry_after(client, path, error_type):
    with capture_logs() as logs:
        response = client.get(path)
    assert body_of(response) == (503, "unavailable", OUTAGE_SENTENCE, "5")
    assert [(e["event"], e["error_type"]) for e in logs] == [("request.outage", error_type)]


def test_a_class_22_error_computed_by_the_query_is_a_logged_500_not_the_callers_fault(client):
    with capture_logs() as logs:
        response = client.get("/class22/from-the-query")
    assert body_of(response) == (500, "internal", "An internal error occurred.", None)
    assert [(e["event"], e["error_type"]) for e in logs] == [
        ("request.unhandled", "DivisionByZeroError")
    ]


@pytest.mark.parametrize("path", ["/class22/bound-nul", "/class22/bound-out-of-range"])
def test_a_bound_argument_the_database_refuses_is_the_callers_400(client, path):
    with capture_logs() as logs:
        response = client.get(path)
    assert body_of(response) == (
        400,
        "invalid_value",
        "A value in the request is out of range or contains characters that cannot be stored.",
        None,
    )
    assert [e["event"] for e in logs] == ["request.bad_value"]
