"""What the JSON API accepts at the edge, before any service or query sees it.

- `SerialId`: a path or query id of a `serial` column is 1 to 2**31 - 1. A larger number is a
  valid Python int but not a PostgreSQL `integer`; refused here it is a 400 naming the
  parameter, instead of an error from the driver.
- `strict_int_path_parameters`: a `{name:int}` path parameter is written the way JSON writes an
  integer, in ASCII digits 0-9 with no plus sign, space, underscore or leading zero (`0` itself
  aside; a minus sign is allowed, so `-1` is refused by the range with its usual sentence),
  at most 19 digits. Litestar parses it with Python's `int()`, which also reads
  `/api/users/%D9%A1` (an Arabic-Indic one), `/%201` (a leading space) and `/1_0` (ten): one
  record under many spellings, which caches, logs and audit readers would take for different
  ones. Any other spelling is a 400 naming the parameter, as a query parameter's would be
  (msgspec reads query integers just as strictly). Leading zeros are refused rather than
  read: `/users/007` and `/users/7` must not both be a user's address. The range (1 to
  2**31 - 1 for `SerialId`) is checked after, from the handler's annotation.
- `refuse_control_characters`: stored text (names, reasons) holds no control characters other
  than tab and line breaks; PostgreSQL refuses NUL in text. Request bodies call it from
  `__post_init__`, so the 400 names the field. Those fields are declared `PlainText`, which
  documents the same rule as a `pattern` in the OpenAPI document (for the document only:
  msgspec does not check it, so the refusal keeps its sentence).
- `require_json`: a body is read only when it is sent as `application/json`. Litestar would
  parse a `text/plain` body as JSON too, and `text/plain` is what a form on another site can
  send without a CORS preflight: `<form enctype="text/plain">` can post
  `{"username": ..., "password": ...}` to /api/auth/login and sign the browser into an
  attacker's account (login CSRF), which SameSite cookies cannot stop because logging in needs
  no cookie. Browsers send `application/json` cross-site only after a preflight, which this
  app never grants. So insisting on the media type closes that door for every browser, with or
  without an Origin header, and costs API clients nothing (they send JSON already). Only POST
  routes need it: PATCH, PUT and DELETE cannot be sent cross-origin without a preflight at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from litestar import Request
from litestar.exceptions import ClientException
from litestar.params import Parameter
from litestar.routes import HTTPRoute
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE

from core.errors import InfusionError
from core.identity.model import has_control_characters

SERIAL_MAX = 2**31 - 1
SerialId = Annotated[int, Parameter(ge=1, le=SERIAL_MAX)]

# What `has_control_characters` finds (tests/unit/test_inputs.py holds them to each other).
NO_CONTROL_CHARACTERS = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
PlainText = Annotated[
    str, msgspec.Meta(extra_json_schema={"extra": {"pattern": NO_CONTROL_CHARACTERS}})
]

JSON_ONLY = "Send the request body as JSON, with the header Content-Type: application/json."


# JSON's integer grammar; 19 digits hold any PostgreSQL bigint.
STRICT_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,18})")


STRICT_INT_RULE = (
    "must be a whole number written with the digits 0-9 only (and a leading minus sign), "
    "without a plus sign, spaces, underscores or leading zeros, at most 19 digits"
)


class PathParameterError(InfusionError):
    code = "invalid_request"
    status = 400


def strict_int_parser(name: str) -> Callable[[str], int]:
    """A path parser for `{name:int}` that accepts only the canonical spelling (see above)."""

    def parse(value: str) -> int:
        if STRICT_INT.fullmatch(value) is None:
            # Raised while routing, where Litestar turns any ValueError (ValidationException
            # is one) into a bare 404 naming nothing; the body is a validation 400's.
            raise PathParameterError(
                f"Invalid request: {name}: {STRICT_INT_RULE}",
                errors=[{"key": name, "message": STRICT_INT_RULE, "source": "path"}],
            )
        return int(value)

    return parse


def strict_int_path_parameters(route: HTTPRoute) -> None:
    """Give every `int` path parameter of `route` the strict parser (the routing table is built
    from these definitions after every route is registered)."""
    for name, definition in list(route.path_parameters.items()):
        if definition.type is int:
            route.path_parameters[name] = definition._replace(parser=strict_int_parser(name))
    route.path_components = [
        route.path_parameters.get(getattr(part, "name", None), part)  # type: ignore[arg-type]
        if not isinstance(part, str)
        else part
        for part in route.path_components
    ]


def refuse_control_characters(**fields: Any) -> None:
    """ValueError (a 400 from msgspec) naming the first text field with a control character."""
    for name, value in fields.items():
        if isinstance(value, str) and has_control_characters(value):
            raise ValueError(f"{name} must not contain control characters (such as NUL).")


async def require_json(request: Request[Any, Any, Any]) -> None:
    """A `before_request` hook: 415 unless the body is declared `application/json`."""
    media_type, _ = request.content_type
    if media_type.lower() != "application/json":
        raise ClientException(JSON_ONLY, status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE)
