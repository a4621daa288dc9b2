"""The OpenAPI document says what each operation can answer, derived from the route itself.

Every error leaves as `application/problem+json` (core.web.errors.problem), so every operation
documents, with the `ProblemDetails` schema, each error status it can send. Which ones follow
from how the route is declared, so a route written later is documented without a line of its
own (`ApiContract.receive_route` runs for every route the app registers):

- 400 when it reads parameters or a body (Litestar's validation, a value PostgreSQL refuses);
- 401 when it is guarded (`requires(...)`); 403 when the guard names roles or refuses tokens;
- 404 when its path names something (an id that does not exist);
- 409 and 422 for writes (POST, PUT, PATCH, DELETE) that are guarded or read a body: the
  domain refuses a conflict (409) or a broken rule (422) with a sentence;
- 413 for bodies (past Litestar's size limit); 415 when `require_json` runs before it;
- 503 for every operation: sign-in is checked against Redis and PostgreSQL on each request;
- anything the rules cannot see (login's 401 and the sign-in throttle's 429) the route names
  in `opt={"problems": (401, 429)}`.

A status the handler documents itself in `responses=` wins (GET /health answers 503 with its own
`Health` body). The fuzz in tests/api/test_openapi_fuzz.py holds every answer to this document.

Request bodies that refuse unknown fields (`msgspec.Struct(forbid_unknown_fields=True)`) are
documented with `additionalProperties: false`, so a client (or a fuzzer) knows extras are a 400.
"""

from __future__ import annotations

from typing import Any

import msgspec

# Litestar's own Struct schema plugin, extended below (not exported under a public name).
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Schema
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute
from litestar.typing import FieldDefinition

from core.web.errors import PROBLEM_JSON, TITLES
from core.web.guards import role_guards
from core.web.inputs import require_json, strict_int_path_parameters

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# opt key: problem statuses a route sends that the rules below cannot infer.
PROBLEMS_OPT = "problems"


class ProblemDetails(msgspec.Struct, kw_only=True):
    """An error (RFC 9457), as core.web.errors.problem builds it. Other members may follow:
    `errors` (which fields were wrong) on a 400, `retry_after` (seconds) on a 429, and the
    domain error's own details."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str
    request_id: str
    errors: list[dict[str, Any]] | None = None
    retry_after: int | None = None


WHEN = {
    400: "The request is malformed: a parameter or body field is missing, of the wrong type or "
    "out of range (`errors` names each), or a value cannot be stored.",
    401: "Not signed in: log in, or send an API token (`Authorization: Bearer inf_...`); the "
    "`WWW-Authenticate` header names the scheme.",
    403: "Signed in, but your roles do not allow this, or it must be done in person (in a "
    "session, never with an API token).",
    404: "What the path names does not exist.",
    409: "Conflicts with what exists (for example a username that is taken).",
    413: "The request body is larger than the server accepts.",
    415: "The body is not sent as `Content-Type: application/json`.",
    422: "Well-formed, but a rule of the domain refuses it; `detail` says which.",
    429: "Too many attempts; `Retry-After` (and `retry_after`) say how many seconds to wait.",
    503: "The database or Redis is not answering; try again in a moment (`Retry-After`).",
}


def problem_statuses(handler: HTTPRouteHandler, route: HTTPRoute) -> list[int]:
    """The error statuses `handler` can answer on `route`, by the rules of the module docstring."""
    kwargs_model = route.route_handler_map[next(iter(handler.http_methods))][1]
    has_body = "data" in kwargs_model.expected_reserved_kwargs
    has_parameters = has_body or any(
        (
            kwargs_model.expected_path_params,
            kwargs_model.expected_query_params,
            kwargs_model.expected_header_params,
            kwargs_model.expected_cookie_params,
        )
    )
    guards = role_guards(handler)
    statuses = {503}
    if has_parameters:
        statuses.add(400)
    if guards:
        statuses.add(401)
    if any(guard.roles or guard.interactive for guard in guards):
        statuses.add(403)
    if route.path_parameters:
        statuses.add(404)
    if handler.http_methods & WRITE_METHODS and (guards or has_body):
        statuses |= {409, 422}
    if has_body:
        statuses.add(413)
    if handler.resolve_before_request() is require_json:
        statuses.add(415)
    statuses.update(int(status) for status in handler.opt.get(PROBLEMS_OPT, ()))
    return sorted(statuses)


def problem_responses(statuses: list[int]) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            data_container=ProblemDetails,
            media_type=PROBLEM_JSON,
            description=f"{TITLES[status]}. {WHEN[status]}",
            generate_examples=False,
        )
        for status in statuses
    }


class ForbiddenExtrasStructSchema(StructSchemaPlugin):
    """Litestar's schema for msgspec Structs, plus `additionalProperties: false` for those
    that refuse unknown fields (msgspec answers 400 naming the field)."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        config = getattr(field_definition.type_, "__struct_config__", None)
        if config is not None and config.forbid_unknown_fields and isinstance(schema, Schema):
            schema.additional_properties = False
        return schema


class ApiContract(ReceiveRoutePlugin):
    """What every route answers and accepts, set once here for all of them (module docstring):
    the problem responses in the document, strict integer path parameters
    (core.web.inputs.strict_int_path_parameters), and a correct `Allow` on OPTIONS."""

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute):
            return
        strict_int_path_parameters(route)
        allow_lists_every_method(route)
        for handler, _ in route.route_handler_map.values():
            if not handler.resolve_include_in_schema():
                continue
            documented = problem_responses(problem_statuses(handler, route))
            handler.responses = {**documented, **(handler.responses or {})}


def allow_lists_every_method(route: HTTPRoute) -> None:
    """Litestar's automatic OPTIONS handler answers `Allow` from the route object it was made
    with; when a path gains handlers later (GET and POST of one controller path, a page's GET
    and POST) the route is rebuilt but keeps that handler, so `Allow` missed methods
    (`OPTIONS /api/users` said `OPTIONS, POST`). Point it at the route it now serves."""
    for handler in route.route_handlers:
        if handler.handler_name != "options_handler":
            continue
        for cell in handler.fn.__closure__ or ():
            if isinstance(cell.cell_contents, HTTPRoute):
                cell.cell_contents = route


def contract_plugins() -> list[Any]:
    """For `Litestar(plugins=...)`: the Struct schema plugin must come before Litestar's own
    (the first plugin that takes a type makes its schema), which the app adds after these."""
    return [ApiContract(), ForbiddenExtrasStructSchema()]
