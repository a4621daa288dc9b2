"""Rules of the pages' plumbing that need no server: redirects, assets, route declarations."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigurationError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/", "/"),
        ("/shipments", "/shipments"),
        ("/shipments?status=late&page=2", "/shipments?status=late&page=2"),
        ("/t/abc#top", "/t/abc#top"),
        (None, "/"),
        ("", "/"),
        ("shipments", "/"),
        ("//evil.example", "/"),
        ("//evil.example/path", "/"),
        ("https://evil.example", "/"),
        ("http:/evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/\\evil.example", "/"),
        ("\\\\evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("/login", "/"),
        ("/login?next=/x", "/"),
        ("/logout", "/"),
        ("/fragments/status", "/"),
        ("/" + "a" * 2001, "/"),
    ],
)
def test_safe_next_keeps_only_paths_on_this_site(value: str | None, expected: str) -> None:
    from core.web.security import safe_next

    assert safe_next(value) == expected


@pytest.mark.parametrize(
    ("next_path", "expected"),
    [
        ("/", "/login?next=/"),
        ("/shipments?status=late", "/login?next=/shipments%3Fstatus%3Dlate"),
        ("//evil.example", "/login"),
        ("/fragments/status", "/login"),
        (None, "/login"),
    ],
)
def test_login_url_carries_a_safe_next(next_path: str | None, expected: str) -> None:
    from core.web.security import login_url

    assert login_url(next_path) == expected


def test_the_app_refuses_to_start_without_npm_packages(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from dataclasses import replace

    from api.app import create_app
    from core.settings import load_settings
    from frontend import assets

    htmx = assets.VENDOR_FILES["htmx.min.js"]
    monkeypatch.setitem(
        assets.VENDOR_FILES, "htmx.min.js", replace(htmx, path=tmp_path / "htmx.min.js")
    )
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "SECRET_KEY": "x" * 40,
            "INFUSION_DATA_DIR": str(tmp_path),
        }
    )

    with pytest.raises(ConfigurationError, match=r"htmx\.org .*Run `npm ci`"):
        create_app(settings)


def test_asset_urls_change_when_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from frontend import assets

    (tmp_path / "css").mkdir()
    css = tmp_path / "css" / "x.css"
    css.write_text("a { color: red }")
    monkeypatch.setattr(assets, "STATIC_DIR", tmp_path)
    first = assets.asset_url("css/x.css")
    assert first.startswith("/static/css/x.css?v=")
    css.write_text("a { color: blue }")
    os.utime(css, (css.stat().st_atime, css.stat().st_mtime + 5))
    assert assets.asset_url("css/x.css") != first
    with pytest.raises(FileNotFoundError):
        assets.asset_url("../pyproject.toml")


def test_every_page_route_declares_an_operation_id_and_who_may_see_it() -> None:
    from litestar import Litestar
    from litestar.routes import HTTPRoute

    from api.contexts import manifests
    from core.web.guards import is_public, role_guards
    from frontend import page_handlers

    # The shell's pages and every context's, as the app factory mounts them.
    context_pages = [page for m in manifests() for page in m.pages]
    app = Litestar(route_handlers=page_handlers(context_pages), openapi_config=None)
    declared = {
        (method, route.path): handler
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        for method in handler.http_methods
        if method != "OPTIONS"
    }
    assert set(declared) >= {
        ("GET", "/"),
        ("GET", "/login"),
        ("POST", "/login"),
        ("POST", "/logout"),
        ("GET", "/fragments/status"),
    }
    for (method, path), handler in declared.items():
        where = f"{method} {path}"
        assert isinstance(handler.operation_id, str), f"{where} has no operation_id"
        # Exactly one of: a role guard, or an explicit public marker.
        assert is_public(handler) != bool(role_guards(handler)), where
        assert handler.include_in_schema is False, where
