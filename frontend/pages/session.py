"""`GET/POST /login` and `POST /logout`: plain HTML forms that work without JavaScript."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from litestar.status_codes import (
    HTTP_303_SEE_OTHER,
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_429_TOO_MANY_REQUESTS,
)

from core import db
from core.errors import AuthenticationError, RateLimitedError
from core.identity.model import PASSWORD_MAX, USERNAME_MAX
from core.identity.services import WRONG_CREDENTIALS, authenticate, record_login
from core.web.pages import current_user, render
from core.web.principal import client_address
from core.web.security import LOGIN_PATH, require_same_origin, safe_next
from core.web.sessions import login_session, logout_session

MISSING_CREDENTIALS = "Enter your username and password."
# The longest sign-in form a person can send: a username, a password (up to 4 UTF-8 bytes a
# character, each %XX-escaped: 12 bytes) and a `next` path, with room to spare. Litestar
# answers 413 beyond it, before reading the rest.
LOGIN_FORM_MAX_BYTES = 12 * (USERNAME_MAX + PASSWORD_MAX) + 4 * 2000 + 1024


def _echoed(username: str) -> str:
    """What the form shows back of a username that was typed: no control characters (a NUL
    must not reach the page) and no more than a username can hold."""
    return "".join(ch for ch in username if ch.isprintable())[:USERNAME_MAX]


def _login_form(
    request: Request[Any, Any, Any],
    *,
    next_path: str,
    username: str = "",
    error: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Template:
    return render(
        request,
        "pages/login.html",
        status_code=status_code,
        headers=headers,
        # The login page never shows the header of whoever was signed in before.
        user=None,
        nav=[],
        next=next_path,
        username=_echoed(username),
        error=error,
    )


class SessionPages(Controller):
    path = "/"
    opt = {"public": True}

    @get(LOGIN_PATH, operation_id="getLoginPage", include_in_schema=False, opt={"public": True})
    async def login_page(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        next_path = safe_next(request.query_params.get("next"))
        if current_user(request) is not None:
            return Redirect(next_path, status_code=HTTP_303_SEE_OTHER)
        return _login_form(request, next_path=next_path)

    @post(
        LOGIN_PATH,
        operation_id="postLogin",
        include_in_schema=False,
        opt={"public": True},
        status_code=HTTP_303_SEE_OTHER,
        request_max_body_size=LOGIN_FORM_MAX_BYTES,
    )
    async def login(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        require_same_origin(request)
        form = await request.form()
        username = str(form.get("username") or "").strip()
        password = str(form.get("password") or "")
        next_path = safe_next(str(form.get("next") or ""))
        if not username or not password:
            return _login_form(
                request,
                next_path=next_path,
                username=username,
                error=MISSING_CREDENTIALS,
                status_code=HTTP_400_BAD_REQUEST,
            )
        try:
            # argon2 runs before the transaction, so no database connection waits on it.
            verified = await authenticate(
                request.app.state.redis,
                username=username,
                password=password,
                client=client_address(request),
                settings=request.app.state.settings,
            )
        except RateLimitedError as exc:
            return _login_form(
                request,
                next_path=next_path,
                username=username,
                error=exc.message,
                status_code=HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(exc.retry_after)},
            )
        except AuthenticationError:
            # One message for every reason (identity's rule): no hint which usernames exist.
            return _login_form(
                request,
                next_path=next_path,
                username=username,
                error=WRONG_CREDENTIALS,
                status_code=HTTP_401_UNAUTHORIZED,
            )
        # The edge owns the transaction: a login stamps last_login_at and is audited.
        async with db.transaction():
            user = await record_login(verified)
        await login_session(request, user)
        return Redirect(next_path, status_code=HTTP_303_SEE_OTHER)

    @post(
        "/logout",
        operation_id="postLogout",
        include_in_schema=False,
        # Public so that a person whose session already ended still lands on the login page.
        opt={"public": True},
        status_code=HTTP_303_SEE_OTHER,
    )
    async def logout(self, request: Request[Any, Any, Any]) -> Redirect:
        # POST only (a GET link or <img> elsewhere must not sign anyone out), from our own pages.
        require_same_origin(request)
        await logout_session(request)
        return Redirect(LOGIN_PATH, status_code=HTTP_303_SEE_OTHER)
