"""What the served app answers where the OpenAPI document makes a promise: integer ids in one
spelling only, and `Allow` naming every method of a path."""

from __future__ import annotations

import httpx
import pytest

from core import db
from core.web.inputs import STRICT_INT_RULE as STRICT_ID
from tests.api.test_auth_support import make_user
from tests.api.test_openapi_fuzz import accounts_and_trail, session_caller
from tests.fixtures import ServedApp

SPELLINGS = {
    "arabic-indic": "%D9%A1",
    "fullwidth": "%EF%BC%91",
    "leading-space": "%201",
    "trailing-space": "1%20",
    "underscore": "1_0",
    "plus": "+1",
    "leading-zero": "01",
    "decimal": "1.0",
    "20-digits": "12345678901234567890",
}
OPERATIONS = {
    "getUser": ("GET", "/api/users/{}", None),
    "updateUser": ("PATCH", "/api/users/{}", {"display_name": "Renamed"}),
    "setUserPassword": ("PUT", "/api/users/{}/password", {"password": "a long enough password"}),
    "revokeToken": ("DELETE", "/api/auth/tokens/{}", None),
}
# Every spelling on one route, two spellings on each of the others: the rule is one parser for
# every `{name:int}` (core.web.inputs.strict_int_path_parameters).
CASES = [("getUser", spelling) for spelling in SPELLINGS] + [
    (operation, spelling)
    for operation in OPERATIONS
    if operation != "getUser"
    for spelling in ("arabic-indic", "underscore")
]


# Found by an outside Schemathesis run: Litestar reads `{user_id:int}` with Python's int(), so
# an Arabic-Indic digit, a space, an underscore, a plus sign or a leading zero named user 1.
@pytest.mark.parametrize(("operation", "spelling"), CASES, ids=[f"{o}-{s}" for o, s in CASES])
async def test_an_id_in_another_spelling_is_a_400_naming_the_parameter(
    served_app: ServedApp,
    http: httpx.AsyncClient,
    operation: str,
    spelling: str,
) -> None:
    method, template, body = OPERATIONS[operation]
    admin = await session_caller(served_app)
    await make_user("pat", "packer")
    before = await accounts_and_trail()
    name = "token_id" if "tokens" in template else "user_id"
    path = template.format(SPELLINGS[spelling])

    response = await http.request(method, path, json=body, headers=admin.headers)

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "invalid_request"
    assert problem["detail"] == f"Invalid request: {name}: {STRICT_ID}"
    assert problem["errors"] == [{"key": name, "message": STRICT_ID, "source": "path"}]
    assert await accounts_and_trail() == before


async def test_the_canonical_spelling_still_names_the_record(
    served_app: ServedApp, http: httpx.AsyncClient
) -> None:
    admin = await session_caller(served_app)
    pat = await make_user("pat", "packer")

    response = await http.get(f"/api/users/{pat.id}", headers=admin.headers)

    assert response.status_code == 200
    assert response.json()["username"] == "pat"


@pytest.mark.parametrize(
    ("value", "status"), [("0", 400), ("-1", 400), ("2147483648", 400), ("999", 404)]
)
async def test_an_id_out_of_range_is_a_400_and_an_unknown_one_a_404(
    served_app: ServedApp, http: httpx.AsyncClient, value: str, status: int
) -> None:
    admin = await session_caller(served_app)

    response = await http.get(f"/api/users/{value}", headers=admin.headers)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


# Found by Schemathesis: Litestar's automatic OPTIONS answered `Allow` from the route as it was
# when its first handler was registered (`OPTIONS /api/users` said `OPTIONS, POST`).
@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/api/users", "GET, OPTIONS, POST"),
        ("/api/users/1", "GET, OPTIONS, PATCH"),
        ("/api/auth/tokens", "GET, OPTIONS, POST"),
        ("/login", "GET, OPTIONS, POST"),
        ("/health", "GET, OPTIONS"),
    ],
)
async def test_options_allows_every_method_of_the_path(
    served_app: ServedApp, http: httpx.AsyncClient, path: str, allow: str
) -> None:
    # Signed in: OPTIONS of a guarded path is guarded like the path's other methods.
    admin = await session_caller(served_app)

    response = await http.options(path, headers=admin.headers)

    assert response.status_code == 204
    assert response.headers["allow"] == allow


async def test_a_405_names_the_methods_the_path_allows(http: httpx.AsyncClient) -> None:
    response = await http.delete("/api/users")

    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert sorted(response.headers["allow"].split(", ")) == ["GET", "OPTIONS", "POST"]


async def test_the_document_is_served_with_the_problem_schema(http: httpx.AsyncClient) -> None:
    document = (await http.get("/schema/openapi.json")).json()

    login = document["paths"]["/api/auth/login"]["post"]["responses"]
    assert sorted(login) == ["200", "400", "401", "409", "413", "415", "422", "429", "503"]
    assert document["components"]["schemas"]["LoginIn"]["additionalProperties"] is False
    health = document["paths"]["/health"]["get"]["responses"]["503"]["content"]
    assert health == {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}
    assert await db.fetch("SELECT 1 AS one") == [{"one": 1}]
