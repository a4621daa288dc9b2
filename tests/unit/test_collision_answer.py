"""A serialisation failure or a deadlock that no retry absorbed reaches the HTTP edge as a 409
to try again (with Retry-After), never as a 500 (core/web/errors.py, handle_collision)."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest
from litestar import Litestar, post
from litestar.testing import TestClient

from core.web.errors import EXCEPTION_HANDLERS


@post("/collide/40001")
async def serialisation_failure() -> None:
    raise asyncpg.exceptions.SerializationError("could not serialize access")


@post("/collide/40P01")
async def deadlock() -> None:
    raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = Litestar(
        route_handlers=[serialisation_failure, deadlock], exception_handlers=EXCEPTION_HANDLERS
    )
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
def test_an_unretried_collision_answers_409_with_retry_after(client, sqlstate):
    response = client.post(f"/collide/{sqlstate}")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "type": "about:blank#conflict",
        "title": "Conflict",
        "status": 409,
        "detail": (
            "This change collided with others made at the same moment; nothing was saved."
            " Try again."
        ),
        "code": "conflict",
        "instance": f"/collide/{sqlstate}",
        "request_id": "",
    }
