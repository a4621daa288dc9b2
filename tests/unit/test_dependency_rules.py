"""The dependency direction of docs/architecture.md, checked on every import statement.

`api, frontend → fulfilment → coldchain, printing → core`. The one exception is named here:
pages use the HTTP plumbing of `api` (auth, guards, health), and only `api`'s composition
roots (`api.app`, `api.routes`) import `frontend`, so no module imports in a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "fulfilment", "coldchain", "printing", "api", "frontend")
FORBIDDEN = {
    "core": {"fulfilment", "coldchain", "printing", "api", "frontend"},
    "coldchain": {"fulfilment", "api", "frontend"},
    "printing": {"fulfilment", "coldchain", "api", "frontend"},
    "fulfilment": {"api", "frontend"},
    "frontend": set(),
    "api": set(),
}
# api modules that pages may use; they must never import frontend themselves.
API_PLUMBING_FOR_PAGES = {"api.auth", "api.guards", "api.health", "api.errors"}
FRONTEND_IMPORTERS = {"api.app", "api.routes"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def sources() -> list[Path]:
    return sorted(
        p
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("*.py")
        if "piccolo_migrations" not in p.parts
    )


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_dependency_direction(path: Path):
    module = module_name(path)
    package = top(module)
    wrong = sorted(name for name in imports_of(path) if top(name) in FORBIDDEN[package])
    assert wrong == [], f"{module} must not import {wrong}"
    if package == "frontend":
        api_uses = sorted(n for n in imports_of(path) if top(n) == "api")
        assert set(api_uses) <= API_PLUMBING_FOR_PAGES, f"{module} imports {api_uses}"
    if package == "api" and module not in FRONTEND_IMPORTERS:
        frontend_uses = sorted(n for n in imports_of(path) if top(n) == "frontend")
        assert frontend_uses == [], f"{module} must not import {frontend_uses}"


def test_the_check_sees_imports_inside_functions(tmp_path: Path):
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from fulfilment.orders import Order\n    import api.app\n")
    assert imports_of(source) == {"fulfilment.orders", "api.app"}
