"""Prototype."""

from __future__ import annotations

import collections
from dataclasses import dataclass

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from core import db
from core.identity.services import issue_token
from tests.api.test_auth_support import make_user

COUNTS: collections.Counter = collections.Counter()
STATUSES: dict = collections.defaultdict(collections.Counter)


@dataclass(frozen=True)
class Caller:
    role: str
    user_id: int
    token_id: int
    spare_token_id: int
    target_user_id: int
    headers: dict


@pytest.fixture
def openapi_schema(served_app):
    config = schemathesis.Config.from_dict(
        {"generation": {"max-examples": 30, "deterministic": True, "database": "none"}}
    )
    return schemathesis.openapi.from_url(served_app.url + "/schema/openapi.json", config=config)


@pytest.fixture(params=["admin", "pharmacist"])
async def caller(request, clean_state):
    role = request.param
    me = await make_user(f"fuzz-{role}", role)
    target = await make_user("fuzz-target", "admin")
    async with db.transaction():
        token, plaintext = await issue_token(me.id, name="openapi fuzz", actor=f"user:{me.id}")
        spare, _ = await issue_token(me.id, name="spare", actor=f"user:{me.id}")
    return Caller(
        role=role,
        user_id=me.id,
        token_id=token.id,
        spare_token_id=spare.id,
        target_user_id=target.id,
        headers={"Authorization": f"Bearer {plaintext}"},
    )


def _as_id(value):
    try:
        return int(str(value))
    except ValueError:
        return None


def problem_json(ctx, response, case):
    if response.status_code >= 400:
        ct = response.headers.get("content-type", [""])
        assert ct[0].startswith("application/problem+json"), (response.status_code, ct)


def successes_conform(ctx, response, case):
    if 200 <= response.status_code < 300:
        content_type_conformance(ctx, response, case)
        response_schema_conformance(ctx, response, case)


schema = schemathesis.pytest.from_fixture("openapi_schema")


@schema.parametrize()
@pytest.mark.usefixtures("caller")
def test_fuzz(case, caller):
    params = case.path_parameters
    if params:
        if _as_id(params.get("user_id")) == caller.user_id:
            params["user_id"] = caller.target_user_id
        if _as_id(params.get("token_id")) == caller.token_id:
            params["token_id"] = caller.spare_token_id
    response = case.call(headers=caller.headers)
    COUNTS[(caller.role, case.operation.label)] += 1
    STATUSES[(caller.role, case.operation.label)][response.status_code] += 1
    case.validate_response(
        response, checks=[not_a_server_error, problem_json, successes_conform]
    )


def teardown_module():
    for key in sorted(COUNTS):
        print(key, COUNTS[key], dict(STATUSES[key]))
