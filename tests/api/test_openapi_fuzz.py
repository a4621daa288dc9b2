"""Generated requests against the app's own OpenAPI document, held to it by every check.

Schemathesis loads `/schema/openapi.json` from the served app and, for every operation in it,
sends requests made from the schema: its coverage phase (boundary and just-out-of-bounds values,
missing fields, wrong types, other HTTP methods) and then random valid and invalid data. Every
answer goes through all of Schemathesis's default checks (`case.call_and_validate()` with no
`checks=`): no 5xx; the status, media type, headers and body are the documented ones (errors
included: core.web.openapi documents each problem+json status); schema-valid data is accepted
and schema-invalid data refused; a 405 carries `Allow`, and OPTIONS lists the path's methods.
One setting departs from the defaults: a schema-valid request may be refused with 422, which
this API answers only when a rule of the domain (a password too short, the last admin, a
wrong current password) refuses well-formed data; its validation errors are 400s.
On top, every error is an RFC 9457 body naming its status and the request id.

Who calls: an API token of each role (integrations), an admin signed in with a session (the
only way past guards that refuse tokens, `requires(interactive=True)`), and nobody, for whom
every guarded route answers 401. A stateful run, as the signed-in admin, follows the links
Schemathesis infers between operations (a created user is then read, changed and re-passworded;
a listed token is revoked). Generated requests never log the caller out, deactivate or
re-password them, or revoke their token (`Caller.aim_away_from_self`); the login throttle's 429
is a correct answer, not a failure.

Generation is derandomized and keeps no example database, so a run is the same in CI as here.
The 500s this fuzz found are kept at the end of the file as plain regression tests, each with
the exact request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.config._checks import POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES

from api.app import create_app
from core import db
from core.identity.services import issue_token
from core.web.errors import PROBLEM_JSON
from core.web.guards import is_public
from core.web.inputs import STRICT_INT
from tests.api.test_auth_support import PASSWORD, SESSION_COOKIE, audit_events, make_user
from tests.fixtures import ServedApp

# Per operation: random examples on top of the coverage phase's deterministic ones (about as
# many again). The whole file takes under three minutes on a busy 2-core machine.
MAX_EXAMPLES = 15
# Stateful: scenarios, and calls in each.
SCENARIOS = 15
STEPS = 8

SCHEMA_PATH = "/schema/openapi.json"
# What api/errors.py puts in every problem body.
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code", "instance", "request_id"}

# CPU-heavy: never alongside the other heavy tests (they share one xdist worker), so
# timings such as "a later start is under 10 s" measure the product, not the contention.
pytestmark = pytest.mark.xdist_group("heavy")


@pytest.fixture
def openapi_schema(served_app: ServedApp) -> Any:
    config = schemathesis.Config.from_dict(
        {
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,  # Hypothesis `derandomize`: same cases on every run
                "database": "none",
            },
            "checks": {
                # Schema-valid but refused by a rule of the domain (module docstring).
                "positive_data_acceptance": {
                    "expected-statuses": [*POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES, "422"]
                }
            },
        }
    )
    return schemathesis.openapi.from_url(served_app.url + SCHEMA_PATH, config=config)


@pytest.fixture(autouse=True)
def _schemathesis_node_id(request: pytest.FixtureRequest) -> None:
    # Schemathesis 4.32's lazy schemas read and rewrite `item._nodeid`, which pytest 9.2 no
    # longer has (the node id is derived). Giving it the attribute back costs nothing.
    request.node._nodeid = request.node.nodeid


# ---------------------------------------------------------------- who calls


@dataclass(frozen=True)
class Caller:
    """A staff member's credential, and the ids generated requests must leave alone.

    Generated ids are mostly small integers, so they hit real rows. A PATCH or a password reset
    aimed at the caller goes to another account instead, a revocation of the caller's own token
    to a spare one: the caller stays signed in and active for the whole run, and those routes
    still get requests that succeed."""

    headers: dict[str, str]
    # path parameter -> {id not to touch: id to use instead}
    redirects: dict[str, dict[int, int]]

    def aim_away_from_self(self, case: Any) -> None:
        parameters = case.path_parameters or {}
        for name, value in list(parameters.items()):
            number = as_int(value)
            if number is not None and number in self.redirects.get(name, {}):
                parameters[name] = self.redirects[name][number]


async def token_caller(role: str) -> Caller:
    me = await make_user(f"fuzz-{role}", role)
    other = await make_user("fuzz-other", "admin")
    async with db.transaction():
        token, plaintext = await issue_token(me.id, name="openapi fuzz", actor=f"user:{me.id}")
        spare, _ = await issue_token(me.id, name="spare", actor=f"user:{me.id}")
    return Caller(
        headers={"Authorization": f"Bearer {plaintext}"},
        redirects={"user_id": {me.id: other.id}, "token_id": {token.id: spare.id}},
    )


async def session_caller(served_app: ServedApp) -> Caller:
    """An admin signed in through the login form: passes the guards that refuse tokens."""
    me = await make_user("fuzz-person", "admin")
    other = await make_user("fuzz-other", "admin")
    async with httpx.AsyncClient(base_url=served_app.url, timeout=10) as client:
        response = await client.post(
            "/api/auth/login", json={"username": "fuzz-person", "password": PASSWORD}
        )
    assert response.status_code == 200, response.text
    return Caller(
        headers={"Cookie": f"{SESSION_COOKIE}={response.cookies[SESSION_COOKIE]}"},
        redirects={"user_id": {me.id: other.id}},
    )


@pytest.fixture(params=["admin", "pharmacist", "technician", "packer"])
async def token_holder(request: pytest.FixtureRequest, clean_state: Any) -> Caller:
    return await token_caller(request.param)


@pytest.fixture
async def signed_in_admin(served_app: ServedApp, clean_state: Any) -> Caller:
    return await session_caller(served_app)


@pytest.fixture
def public_operation_ids(test_settings: Any) -> frozenset[str]:
    """Operation ids of the routes marked `opt={"public": True}`, read from the app itself."""
    app = create_app(test_settings)
    return frozenset(
        handler.operation_id
        for route in app.routes
        for handler in route.route_handlers
        if is_public(handler) and isinstance(handler.operation_id, str)
    )


# ---------------------------------------------------------------- checks


def as_int(value: Any) -> int | None:
    """`value` as an `{name:int}` path parameter reads it (core.web.inputs), else None."""
    text = str(value)
    return int(text) if STRICT_INT.fullmatch(text) else None


def errors_are_problem_details(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx is `application/problem+json` naming its status and the request id."""
    status = response.status_code
    if status < 400:
        return None
    [content_type] = response.headers.get("content-type", [""])
    assert content_type.split(";")[0].strip() == PROBLEM_JSON, (
        f"{status} answered with Content-Type {content_type!r}, expected {PROBLEM_JSON}"
    )
    body = response.json()
    missing = PROBLEM_FIELDS - body.keys()
    assert not missing, f"the problem body lacks {sorted(missing)}: {body}"
    assert body["status"] == status, body
    assert body["detail"], body
    assert [body["request_id"]] == response.headers["x-request-id"], body
    if status == 401:
        assert response.headers.get("www-authenticate") == ['Bearer realm="infusion"']
    return None


EXTRA_CHECKS = [errors_are_problem_details]


schema = schemathesis.pytest.from_fixture("openapi_schema")


# ---------------------------------------------------------------- the properties


# Logging in ignores who is calling, and each try costs an argon2 hash (0.15 s): it is fuzzed
# once, by nobody, below.
@schema.exclude(operation_id="login").parametrize()
@pytest.mark.usefixtures("token_holder")
def test_no_generated_request_gets_a_server_error(case: Any, token_holder: Caller) -> None:
    token_holder.aim_away_from_self(case)
    case.call_and_validate(headers=token_holder.headers, additional_checks=EXTRA_CHECKS)


# Routes guarded with `interactive=True` answer a token 403 before reading its body; a session
# gets through to the body. Logging out would end the session the run depends on.
@schema.exclude(operation_id=["login", "logout"]).parametrize()
def test_no_generated_request_gets_a_server_error_in_a_session(
    case: Any, signed_in_admin: Caller
) -> None:
    signed_in_admin.aim_away_from_self(case)
    case.call_and_validate(headers=signed_in_admin.headers, additional_checks=EXTRA_CHECKS)


@schema.parametrize()
def test_without_credentials_guarded_routes_answer_401_and_none_answers_5xx(
    case: Any, public_operation_ids: frozenset[str]
) -> None:
    response = case.call_and_validate(additional_checks=EXTRA_CHECKS)
    operation = case.operation
    reaches_the_route = case.method.upper() == operation.method.upper() and all(
        as_int(value) is not None for value in (case.path_parameters or {}).values()
    )
    if reaches_the_route and operation.definition.raw["operationId"] not in public_operation_ids:
        assert response.status_code == 401, (
            f"{case.method} {case.formatted_path} without credentials answered "
            f"{response.status_code}: {response.text[:300]}"
        )


def test_stateful_scenarios_in_a_session_follow_the_links(
    openapi_schema: Any, signed_in_admin: Caller
) -> None:
    caller = signed_in_admin
    # Logging out would end the session the scenarios run in; logging in costs an argon2 hash
    # per try and is fuzzed by nobody above.
    machine = openapi_schema.exclude(operation_id=["login", "logout"]).as_state_machine()

    class Scenarios(machine):  # type: ignore[misc,valid-type]
        def before_call(self, case: Any) -> None:
            caller.aim_away_from_self(case)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": caller.headers}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            super().validate_response(response, case, additional_checks=EXTRA_CHECKS, **kwargs)

    Scenarios.run(
        settings=hypothesis.settings(
            max_examples=SCENARIOS,
            stateful_step_count=STEPS,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )


# ---------------------------------------------------------------- what the fuzz found


# Was OpenAPI drift: every operation with parameters or a body documented its 400 as Litestar's
# default `application/json` {status_code, detail, extra}, while core.web.errors answers
# `application/problem+json`; a client generated from the document misread every error.
def test_the_documented_400_is_what_the_app_sends(openapi_schema: Any) -> None:
    case = openapi_schema["/api/auth/login"]["POST"].Case(body={}, media_type="application/json")
    response = case.call()
    assert response.status_code == 400
    assert response.headers["content-type"] == [PROBLEM_JSON]
    case.validate_response(response)


TOO_BIG = 2**31  # one past PostgreSQL `integer`
TOO_BIG_SEQ = 2**63  # one past `bigint`


async def accounts_and_trail() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What a refused request must leave as it was: the accounts and the audit trail."""
    users = await db.fetch("SELECT * FROM app_user ORDER BY id")
    return users, await audit_events()


# Found by the fuzz: a path id beyond PostgreSQL's `integer` (or `before_seq` beyond `bigint`)
# is a valid Python int, so it passes Litestar's `{id:int}`; asyncpg then refused it
# ("value out of int32/int64 range") and the answer was a 500.
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/users/{TOO_BIG}", None),
        ("PATCH", f"/api/users/{TOO_BIG}", {}),
        ("PUT", f"/api/users/{TOO_BIG}/password", {"password": "a long enough password"}),
        ("GET", f"/api/users/{-TOO_BIG - 1}", None),
        ("DELETE", f"/api/auth/tokens/{TOO_BIG}", None),
        ("GET", f"/api/audit/events?before_seq={TOO_BIG_SEQ}", None),
    ],
    ids=["getUser", "updateUser", "setUserPassword", "getUser-negative", "revokeToken", "audit"],
)
async def test_an_out_of_range_id_is_refused_not_a_server_error(
    served_app: ServedApp, http: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    admin = await session_caller(served_app)
    before = await accounts_and_trail()

    response = await http.request(method, path, json=body, headers=admin.headers)

    assert response.status_code in (400, 404), response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert await accounts_and_trail() == before


# Found by the fuzz: a NUL character (U+0000) is valid JSON and a valid query value, but
# PostgreSQL text cannot hold it (CharacterNotInRepertoireError): wherever text reached a query
# (audit filters, display names, audit reasons, token names) the answer was a 500.
@pytest.mark.parametrize(
    ("method", "path", "body", "refusals"),
    [
        ("GET", "/api/audit/events?actor=a%00b", None, (200, 400)),
        ("GET", "/api/audit/events?subject_type=a%00b", None, (200, 400)),
        ("GET", "/api/audit/events?subject_id=a%00b", None, (200, 400)),
        (
            "POST",
            "/api/users",
            {
                "username": "nul",
                "display_name": "a\x00b",
                "password": "a long enough password",
                "roles": ["packer"],
            },
            (400, 422),
        ),
        ("PATCH", "/api/users/{packer}", {"display_name": "a\x00b"}, (400, 422)),
        ("PATCH", "/api/users/{packer}", {"is_active": False, "reason": "a\x00b"}, (400, 422)),
        (
            "PUT",
            "/api/users/{packer}/password",
            {"password": "a long enough password", "reason": "a\x00b"},
            (400, 422),
        ),
    ],
    ids=[
        "audit-actor",
        "audit-subject_type",
        "audit-subject_id",
        "createUser-display_name",
        "updateUser-display_name",
        "updateUser-reason",
        "setUserPassword-reason",
    ],
)
async def test_a_nul_character_is_refused_not_a_server_error(
    served_app: ServedApp,
    http: httpx.AsyncClient,
    method: str,
    path: str,
    body: Any,
    refusals: tuple[int, ...],
) -> None:
    admin = await session_caller(served_app)
    packer = await make_user("pat", "packer")
    before = await accounts_and_trail()

    response = await http.request(
        method, path.format(packer=packer.id), json=body, headers=admin.headers
    )

    assert response.status_code in refusals, response.text
    assert await accounts_and_trail() == before


async def test_a_nul_character_in_a_token_name_is_refused_not_a_server_error(
    served_app: ServedApp, http: httpx.AsyncClient
) -> None:
    person = await session_caller(served_app)
    before = await accounts_and_trail()

    response = await http.post("/api/auth/tokens", json={"name": "a\x00b"}, headers=person.headers)

    assert response.status_code in (400, 422), response.text
    assert await db.fetch("SELECT id FROM api_token") == []
    assert await accounts_and_trail() == before
