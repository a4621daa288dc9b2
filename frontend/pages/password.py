"""`GET/POST /password`: a staff member changes their own password (a plain HTML form).

The page a person lands on after signing in with a password an admin set
(`must_change_password`): until they choose their own, every other page sends them here
(frontend.errors) and the API answers 403 password_change_required. Anyone signed in may use
it at any time; it asks for the current password, like POST /api/auth/password.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from litestar.status_codes import (
    HTTP_303_SEE_OTHER,
    HTTP_400_BAD_REQUEST,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
)

from core import db
from core.errors import DomainError, RateLimitedError
from core.identity.services import set_password, verify_password_change
from core.web.guards import PASSWORD_CHANGE_ALLOWED, requires
from core.web.pages import current_user, render
from core.web.principal import client_address
from core.web.security import require_same_origin, safe_next
from core.web.sessions import login_session

PASSWORD_PATH = "/password"  # noqa: S105  (a path)
MISSING = "Enter your current password and the new one twice."
MISMATCH = "The two new passwords differ; type the same one twice."


def password_url(next_path: str | None) -> str:
    """/password?next=<path> (a safe local path only), or plain /password."""
    target = safe_next(next_path, default="")
    if not target or target.startswith(PASSWORD_PATH):
        return PASSWORD_PATH
    return f"{PASSWORD_PATH}?next={quote(target, safe='/')}"


def _form(
    request: Request[Any, Any, Any],
    *,
    next_path: str,
    error: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Template:
    user = current_user(request)
    required = bool(getattr(user, "must_change_password", False))
    # Nothing in the menu works until the password is changed: show none then.
    menu: dict[str, Any] = {"nav": []} if required else {}
    return render(
        request,
        "pages/password.html",
        status_code=status_code,
        headers=headers,
        required=required,
        next=next_path,
        error=error,
        **menu,
    )


def _next(raw: Any) -> str:
    target = safe_next(str(raw or ""))
    return "/" if target.startswith(PASSWORD_PATH) else target


class PasswordPages(Controller):
    path = "/"

    @get(
        PASSWORD_PATH,
        operation_id="getPasswordPage",
        include_in_schema=False,
        guards=[requires(interactive=True)],
        opt={PASSWORD_CHANGE_ALLOWED: True},
    )
    async def password_page(self, request: Request[Any, Any, Any]) -> Template:
        return _form(request, next_path=_next(request.query_params.get("next")))

    @post(
        PASSWORD_PATH,
        operation_id="postPasswordPage",
        include_in_schema=False,
        guards=[requires(interactive=True)],
        opt={PASSWORD_CHANGE_ALLOWED: True},
        status_code=HTTP_303_SEE_OTHER,
    )
    async def change_password(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        require_same_origin(request)
        form = await request.form()
        current = str(form.get("current_password") or "")
        new = str(form.get("new_password") or "")
        repeat = str(form.get("new_password_again") or "")
        next_path = _next(form.get("next"))
        if not current or not new or not repeat:
            return _form(
                request, next_path=next_path, error=MISSING, status_code=HTTP_400_BAD_REQUEST
            )
        if new != repeat:
            return _form(
                request, next_path=next_path, error=MISMATCH, status_code=HTTP_400_BAD_REQUEST
            )
        me = current_user(request)
        state = request.app.state
        try:
            # argon2 before the transaction: no database connection waits on it.
            await verify_password_change(
                state.redis,
                user_id=me.id,
                current_password=current,
                new_password=new,
                client=client_address(request),
                settings=state.settings,
            )
            async with db.transaction():
                user = await set_password(
                    me.id, password=new, actor=me.actor, settings=state.settings
                )
        except RateLimitedError as exc:
            return _form(
                request,
                next_path=next_path,
                error=exc.message,
                status_code=HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(exc.retry_after)},
            )
        except DomainError as exc:
            return _form(
                request,
                next_path=next_path,
                error=exc.message,
                status_code=HTTP_422_UNPROCESSABLE_ENTITY,
            )
        # This browser goes on under a new session id and the new stamp; the others ended.
        await login_session(request, user)
        return Redirect(next_path, status_code=HTTP_303_SEE_OTHER)
