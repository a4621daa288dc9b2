"""The OpenAPI document is derived from how a route is declared (core.web.openapi), so a route
written later is documented without a line of its own. Pure: a toy app, no server."""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
import pytest
from litestar import Controller, Litestar, delete, get, patch, post
from litestar.openapi import OpenAPIConfig
from litestar.params import JSONBody, Parameter

from core.identity.model import has_control_characters
from core.web.guards import requires
from core.web.inputs import NO_CONTROL_CHARACTERS, PlainText, SerialId, require_json
from core.web.openapi import contract_plugins

PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetails"}


class ThingIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[PlainText, msgspec.Meta(max_length=10)]
    inner: Inner | None = None


class Inner(msgspec.Struct, forbid_unknown_fields=True):
    size: int


class Loose(msgspec.Struct):
    name: str


class Things(Controller):
    path = "/things"

    @get("/{thing_id:int}", operation_id="getThing", guards=[requires()])
    async def show(self, thing_id: SerialId) -> Loose:
        return Loose(name=str(thing_id))

    @post(
        operation_id="createThing",
        guards=[requires("pharmacist")],
        before_request=require_json,
        opt={"problems": (429,)},
    )
    async def create(self, data: JSONBody[ThingIn]) -> Loose:
        return Loose(name=data.name)

    @patch("/{thing_id:int}", operation_id="updateThing", guards=[requires(interactive=True)])
    async def update(self, thing_id: SerialId, data: JSONBody[Loose]) -> Loose:
        return data

    @delete("/{thing_id:int}", operation_id="deleteThing", guards=[requires("admin")])
    async def remove(self, thing_id: SerialId) -> None:
        return None

    @get("/open", operation_id="openThing", opt={"public": True})
    async def public(self) -> Loose:
        return Loose(name="open")

    @get("/search", operation_id="searchThings", opt={"public": True})
    async def search(self, q: Annotated[str, Parameter(max_length=9)] = "") -> list[Loose]:
        return []


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = Litestar(
        route_handlers=[Things],
        plugins=contract_plugins(),
        openapi_config=OpenAPIConfig(title="t", version="1"),
    )
    return app.openapi_schema.to_schema()


def operation(document: dict[str, Any], operation_id: str) -> dict[str, Any]:
    [found] = [
        op
        for item in document["paths"].values()
        for op in item.values()
        if op["operationId"] == operation_id
    ]
    return found


@pytest.mark.parametrize(
    ("operation_id", "success", "problems"),
    [
        ("getThing", "200", [400, 401, 404, 503]),
        ("createThing", "201", [400, 401, 403, 409, 413, 415, 422, 429, 503]),
        ("updateThing", "200", [400, 401, 403, 404, 409, 413, 422, 503]),
        ("deleteThing", "204", [400, 401, 403, 404, 409, 422, 503]),
        ("openThing", "200", [503]),
        ("searchThings", "200", [400, 503]),
    ],
)
def test_each_operation_documents_the_problems_its_route_can_send(
    document: dict[str, Any], operation_id: str, success: str, problems: list[int]
) -> None:
    responses = operation(document, operation_id)["responses"]

    assert sorted(responses) == sorted([success, *map(str, problems)])
    for status in problems:
        assert responses[str(status)]["content"] == {
            "application/problem+json": {"schema": PROBLEM_REF}
        }, status


def test_the_problem_schema_names_every_member_problem_always_sends(
    document: dict[str, Any],
) -> None:
    schema = document["components"]["schemas"]["ProblemDetails"]

    assert schema["required"] == [
        "code",
        "detail",
        "instance",
        "request_id",
        "status",
        "title",
        "type",
    ]
    # Extras (`errors`, `retry_after`, a domain error's details) are allowed.
    assert "additionalProperties" not in schema


def test_bodies_that_refuse_unknown_fields_say_so_nested_ones_too(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]

    assert schemas["ThingIn"]["additionalProperties"] is False
    assert schemas["Inner"]["additionalProperties"] is False
    assert "additionalProperties" not in schemas["Loose"]


def test_plain_text_documents_the_control_character_rule(document: dict[str, Any]) -> None:
    name = document["components"]["schemas"]["ThingIn"]["properties"]["name"]

    assert name == {"type": "string", "maxLength": 10, "pattern": NO_CONTROL_CHARACTERS}


def test_the_documented_pattern_is_the_rule_refuse_control_characters_applies() -> None:
    pattern = re.compile(NO_CONTROL_CHARACTERS)
    for code in range(0x2100):
        char = chr(code)
        assert (pattern.fullmatch(char) is None) == has_control_characters(char), hex(code)


def test_an_integer_path_parameter_is_documented_as_a_bounded_integer(
    document: dict[str, Any],
) -> None:
    [parameter] = operation(document, "getThing")["parameters"]

    assert parameter["name"] == "thing_id"
    assert parameter["in"] == "path"
    assert parameter["schema"] == {"type": "integer", "minimum": 1.0, "maximum": 2**31 - 1}
