"""Small rules every page relies on: where a login may send you back to, and who may post forms.

Why these exist:
- `safe_next` stops an open redirect: a link `.../login?next=https://evil.example` must not
  turn our login page into a phishing relay that lands staff on a look-alike site.
- `require_same_origin` refuses form posts made by another site. Session cookies are
  SameSite=Lax (set by identity), so a cross-site POST carries no session; the Origin check also
  stops "login CSRF" (another site signing a browser into an attacker's account), which
  SameSite cannot, because the login form needs no session. (The JSON login,
  /api/auth/login, is guarded another way: it reads only `application/json`, which no
  cross-site form can send; see api/inputs.py.)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from litestar import Request
from litestar.exceptions import PermissionDeniedException

# Headers of every HTML answer (api.middleware adds them to each one). The CSP allows only
# our own scripts and styles: no inline script, so an injected <script> in data cannot run;
# htmx is told not to inject its own inline style (see the htmx-config meta tag in base.html).
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

# Sent with every response when the public URL is https (api.middleware): a browser that has
# seen it once never tries plain http for a year, so nobody on the network can strip TLS.
# Not `includeSubDomains`: other hosts of the pharmacy's domain are not ours to decide for.
HSTS = "max-age=31536000"

LOGIN_PATH = "/login"
# Pieces of pages that htmx swaps in; their URLs are never pages of their own.
FRAGMENTS_PREFIX = "/fragments/"
_MAX_NEXT = 2000


def safe_next(value: str | None, default: str = "/") -> str:
    """`value` when it is a path on this site, else `default`.

    Refused: absolute URLs (`https://evil.example`), scheme-relative ones (`//evil.example`),
    backslashes (`/\\evil.example`, which browsers read as `//`), control characters (browsers
    drop tabs and newlines, so `/\\t/evil.example` becomes `//evil.example`), the login
    page itself (it would send you back to the form you just filled in), and fragments (a
    bare piece of a page is no place to land).
    """
    if not value or len(value) > _MAX_NEXT or not value.startswith("/"):
        return default
    if value.startswith("//") or "\\" in value:
        return default
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    if parts.path in (LOGIN_PATH, "/logout") or parts.path.startswith(FRAGMENTS_PREFIX):
        return default
    return value


def login_url(next_path: str | None) -> str:
    """/login?next=<path>, or plain /login when there is nowhere (or nowhere safe) to return."""
    target = safe_next(next_path, default="")
    return f"{LOGIN_PATH}?next={quote(target, safe='/')}" if target else LOGIN_PATH


def request_target(request: Request[Any, Any, Any]) -> str:
    """The path and query of this request, to come back to after login."""
    query = request.scope.get("query_string", b"").decode("latin-1")
    return request.url.path + (f"?{query}" if query else "")


def _netloc(url: str) -> str | None:
    """The host[:port] of `url`; None when it cannot be parsed (`http://[` is no origin)."""
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:
        return None


def require_same_origin(request: Request[Any, Any, Any]) -> None:
    """Refuse a form post whose Origin header names another site.

    Browsers send Origin on every POST. A missing header (an old browser, curl) is let through:
    such a request cannot come from another site's page in a current browser.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return
    allowed = {request.headers.get("host", "").lower()}
    settings = getattr(request.app.state, "settings", None)
    if settings is not None:
        allowed.add(_netloc(settings.public_url) or "")
    # An unparsable Origin names no site of ours: refused like another site's.
    netloc = _netloc(origin)
    if origin == "null" or not netloc or netloc not in allowed:
        raise PermissionDeniedException("This form was sent from another site and was refused.")
