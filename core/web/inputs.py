"""What the JSON API accepts at the edge, before any service or query sees it.

- `SerialId`: a path or query id of a `serial` column is 1 to 2**31 - 1. A larger number is a
  valid Python int but not a PostgreSQL `integer`; refused here it is a 400 naming the
  parameter, instead of an error from the driver.
- `refuse_control_characters`: stored text (names, reasons) holds no control characters other
  than tab and line breaks; PostgreSQL refuses NUL in text. Request bodies call it from
  `__post_init__`, so the 400 names the field.
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

from typing import Annotated, Any

from litestar import Request
from litestar.exceptions import ClientException
from litestar.params import Parameter
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE

from core.identity.model import has_control_characters

SERIAL_MAX = 2**31 - 1
SerialId = Annotated[int, Parameter(ge=1, le=SERIAL_MAX)]

JSON_ONLY = "Send the request body as JSON, with the header Content-Type: application/json."


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
