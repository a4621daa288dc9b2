"""The request class of the app: Litestar's, with a JSON body that cannot cause a 500.

msgspec reports malformed JSON as a DecodeError, which Litestar turns into a 400; but a body
that is not UTF-8 inside a string raises UnicodeDecodeError, and one nested a few thousand
levels deep raises RecursionError, and both would end as 500s. They are the sender's mistake,
so they are 400s with a sentence here.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import ClientException

NOT_UTF8 = "The request body is not valid JSON: it must be encoded as UTF-8."
TOO_DEEP = "The request body is not valid JSON that can be read: it is nested too deeply."


class InfusionRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        try:
            return await super().json()
        except UnicodeDecodeError:
            raise ClientException(NOT_UTF8) from None
        except RecursionError:
            raise ClientException(TOO_DEEP) from None
