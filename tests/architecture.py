"""Machine checks of docs/architecture.md: the dependency direction (imports and foreign keys),
no import circles, manifests that reach everything their context declares, and one migration
chain per Piccolo app.

Each check is a function that returns the problems it found as sentences, so the tests can run
it on the real code (expecting none) and on deliberately broken examples (expecting exactly
the named problems).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = ("core", "fulfilment", "coldchain", "printing", "api", "frontend")

# The direction, bottom line first: a unit may import units on lower lines; on a line marked
# as a chain, a unit may also import the ones before it on that line (compounding → orders →
# catalogue); on other lines, units never import each other.
LINES: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("core",), False),
    (("coldchain.packout", "coldchain.loggers", "printing"), False),
    (("fulfilment.catalogue", "fulfilment.orders", "fulfilment.compounding"), True),
    (("fulfilment.carriers", "fulfilment.shipments"), True),
    (("fulfilment.dispatch",), False),
    (("frontend",), False),
    (("api",), False),
)
# Parent packages of contexts hold only a docstring; importing one counts as importing the
# lowest line its contexts sit on (so coldchain never imports even `fulfilment`).
PARENTS = {"fulfilment": "fulfilment.catalogue", "coldchain": "coldchain.packout"}
UNITS = tuple(unit for line, _ in LINES for unit in line)


def _position(unit: str) -> tuple[int, int, bool]:
    for number, (line, chain) in enumerate(LINES):
        if unit in line:
            return number, line.index(unit), chain
    raise KeyError(unit)


def unit_of(module: str) -> str | None:
    """The context (or core, api, frontend) a module belongs to: the longest unit prefix."""
    best = None
    for unit in (*UNITS, *PARENTS):
        if (module == unit or module.startswith(unit + ".")) and (
            best is None or len(unit) > len(best)
        ):
            best = unit
    return best


def may_use(importer: str, imported: str) -> bool:
    """May code of unit `importer` import (or point a foreign key at) unit `imported`?"""
    if importer == imported:
        return True
    if importer in PARENTS:
        return False  # a parent package imports nothing of its children's neighbours
    line_a, index_a, chain = _position(importer)
    line_b, index_b, _ = _position(PARENTS.get(imported, imported))
    if imported in PARENTS:
        # The parent's own text: only its contexts' neighbours above may read it.
        return line_b < line_a or imported == importer.split(".")[0]
    if line_b != line_a:
        return line_b < line_a
    return chain and index_b < index_a


# ---------------------------------------------------------------- imports


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
    """Every module a file imports: at the top, inside functions, under TYPE_CHECKING too.
    `from a.b import c` names `a.b.c` when that is a module of ours, else `a.b`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path, root).split(".")
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_package else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                found.add(candidate if _is_module(candidate, root) else module)
    return found


def _is_module(name: str, root: Path) -> bool:
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def sources(root: Path = ROOT, packages: Iterable[str] = FIRST_PARTY) -> list[Path]:
    return sorted(
        path
        for package in packages
        for path in (root / package).rglob("*.py")
        if "piccolo_migrations" not in path.parts
    )


def direction_problems(root: Path = ROOT, packages: Iterable[str] = FIRST_PARTY) -> list[str]:
    problems = []
    for path in sources(root, packages):
        module = module_name(path, root)
        importer = unit_of(module)
        if importer is None:
            continue
        for name in sorted(imports_of(path, root)):
            imported = unit_of(name)
            if imported is not None and not may_use(importer, imported):
                problems.append(f"{module} imports {name} ({importer} must not use {imported})")
    return problems


def import_cycles(root: Path = ROOT, packages: Iterable[str] = FIRST_PARTY) -> list[list[str]]:
    """Groups of first-party modules that import each other in a circle (Tarjan's SCCs)."""
    graph: dict[str, set[str]] = {}
    for path in sources(root, packages):
        module = module_name(path, root)
        graph[module] = {name for name in imports_of(path, root) if name != module}
    for targets in graph.values():
        targets.intersection_update(graph)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


# ---------------------------------------------------------------- foreign keys


def foreign_key_problems(tables: Iterable[type]) -> list[str]:
    """A foreign key may point only at a table of the same unit or of one it may use."""
    problems = []
    for table in tables:
        owner = unit_of(table.__module__)
        for column in table._meta.foreign_key_columns:
            target = column._foreign_key_meta.resolved_references
            target_owner = unit_of(target.__module__)
            if owner and target_owner and not may_use(owner, target_owner):
                problems.append(
                    f"{table.__name__}.{column._meta.name} ({owner}) points at "
                    f"{target.__name__} ({target_owner})"
                )
    return problems


# ---------------------------------------------------------------- manifests


@dataclass(frozen=True)
class Mounted:
    """What the composition roots actually serve and run."""

    job_names: frozenset[str]  # served by the worker (functions and cron)
    route_functions: frozenset[tuple[str, str]]  # (module, qualname) of every served handler
    table_classes: frozenset[type]  # in the Piccolo apps that piccolo_conf lists
    cli_commands: frozenset[Any]


def walk_modules(package: str) -> list[Any]:
    root = importlib.import_module(package)
    modules = [root]
    for info in pkgutil.walk_packages(root.__path__, prefix=package + "."):
        if ".piccolo_migrations" in info.name:
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def declared_in(package: str) -> dict[str, set[Any]]:
    """What the modules of `package` define (not what they import): jobs (by name),
    controllers and route handlers, tables, command groups."""
    from click import Group
    from litestar import Controller
    from litestar.handlers import HTTPRouteHandler
    from piccolo.table import Table

    from core.queue import JobDef

    found: dict[str, set[Any]] = {
        "jobs": set(),
        "controllers": set(),
        "tables": set(),
        "cli": set(),
    }
    for module in walk_modules(package):
        for value in vars(module).values():
            if isinstance(value, JobDef) and value.body.__module__ == module.__name__:
                found["jobs"].add(value.name)
            elif isinstance(value, Group) and value.callback is not None:
                if getattr(value.callback, "__module__", None) == module.__name__:
                    found["cli"].add(value)
            elif isinstance(value, HTTPRouteHandler) and value.fn.__module__ == module.__name__:
                found["controllers"].add(value)
            elif inspect.isclass(value) and value.__module__ == module.__name__:
                if issubclass(value, Controller) and value is not Controller:
                    found["controllers"].add(value)
                elif issubclass(value, Table) and value is not Table:
                    found["tables"].add(value)
    return found


def manifest_problems(package: str, manifest: Any, mounted: Mounted) -> list[str]:
    """Everything `package` declares is in its manifest, and everything in the manifest is
    served: jobs by the worker, controllers and pages by the app, tables by its Piccolo app,
    its command group by the CLI."""
    problems = []
    declared = declared_in(package)
    listed_jobs = {job.name for job in manifest.jobs}
    for name in sorted(declared["jobs"] - listed_jobs):
        problems.append(f"{package}: job {name} is not in its manifest")
    for name in sorted(listed_jobs - mounted.job_names):
        problems.append(f"{package}: job {name} is not served by the worker")
    listed_routes = set(manifest.controllers) | set(manifest.pages)
    for handler in sorted(declared["controllers"] - listed_routes, key=_label):
        problems.append(f"{package}: route {_label(handler)} is not in its manifest")
    for handler in sorted(listed_routes, key=_label):
        if not _is_served(handler, mounted):
            problems.append(f"{package}: route {_label(handler)} is not mounted by the app")
    app_tables = set(_app_config(manifest.piccolo_app).table_classes)
    for table in sorted(declared["tables"] - app_tables, key=_label):
        problems.append(f"{package}: table {table.__name__} is not in its Piccolo app")
    for table in sorted(app_tables - mounted.table_classes, key=_label):
        problems.append(f"{package}: table {table.__name__} is not in piccolo_conf's apps")
    groups = declared["cli"] | ({manifest.cli} if manifest.cli is not None else set())
    for group in sorted(groups, key=lambda g: g.name or ""):
        if group is not manifest.cli:
            problems.append(f"{package}: command group {group.name} is not in its manifest")
        elif group not in mounted.cli_commands:
            problems.append(f"{package}: command group {group.name} is not in `infusion`")
    return problems


def served_functions(app: Any) -> frozenset[tuple[str, str]]:
    """(module, qualname) of every route handler's function the app serves. Litestar flattens
    controllers into their handlers, so a controller is served when one of its methods is."""
    return frozenset(
        (handler.fn.__module__, handler.fn.__qualname__)
        for route in app.routes
        for handler in getattr(route, "route_handlers", ())
    )


def _is_served(handler: Any, mounted: Mounted) -> bool:
    if inspect.isclass(handler):
        prefix = handler.__qualname__ + "."
        return any(
            module == handler.__module__ and name.startswith(prefix)
            for module, name in mounted.route_functions
        )
    return (handler.fn.__module__, handler.fn.__qualname__) in mounted.route_functions


def _label(thing: Any) -> str:
    return getattr(thing, "__qualname__", None) or getattr(thing, "handler_name", repr(thing))


def _app_config(dotted: str) -> Any:
    return importlib.import_module(dotted).APP_CONFIG


# ---------------------------------------------------------------- migration chains


@dataclass(frozen=True)
class MigrationFile:
    path: Path
    id: str | None
    parent: str | None
    has_parent: bool


def read_migrations(folder: Path) -> list[MigrationFile]:
    found = []
    for path in sorted(folder.glob("*.py")):
        if path.name == "__init__.py":
            continue
        values: dict[str, Any] = {}
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name) and isinstance(node.value, ast.Constant):
                    values[target.id] = node.value.value
        found.append(
            MigrationFile(path, values.get("ID"), values.get("PARENT"), "PARENT" in values)
        )
    return found


def chain_problems(app_name: str, migrations: list[MigrationFile]) -> list[str]:
    """One chain per app: one root, every PARENT exists, no migration has two children (two
    heads), and the chain runs in ID order (the order Piccolo applies them in)."""
    problems = []
    ids = {m.id for m in migrations}
    children: Mapping[str | None, list[MigrationFile]] = {}
    for migration in migrations:
        if not migration.has_parent:
            problems.append(
                f"{app_name}: {migration.path.name} declares no PARENT (the ID of the migration "
                "before it, or None for the first)"
            )
            continue
        if migration.parent is not None and migration.parent not in ids:
            problems.append(f"{app_name}: {migration.path.name} follows unknown {migration.parent}")
        children.setdefault(migration.parent, []).append(migration)  # type: ignore[attr-defined]
    for parent, kids in sorted(children.items(), key=lambda kv: kv[0] or ""):
        if len(kids) > 1:
            names = ", ".join(sorted(k.path.name for k in kids))
            where = f"after {parent}" if parent else "as the first migration"
            problems.append(
                f"{app_name}: two heads: {names} both come {where}; give one of them the other "
                "as its PARENT (a merge)"
            )
    if not problems:
        chain, current = [], None
        while current in children:
            [step] = children[current]
            chain.append(step.id)
            current = step.id
        if chain != sorted(ids):
            problems.append(f"{app_name}: the PARENT chain does not run in ID order: {chain}")
    return problems
