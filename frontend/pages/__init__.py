"""Page controllers, one module per area of the staff console (see docs/frontend.md)."""

from __future__ import annotations

from typing import Any

from frontend.pages.home import HomePages
from frontend.pages.password import PasswordPages
from frontend.pages.session import SessionPages

# Every page controller, mounted under the pages' router by `frontend.page_handlers()`.
PAGE_CONTROLLERS: list[Any] = [SessionPages, PasswordPages, HomePages]
