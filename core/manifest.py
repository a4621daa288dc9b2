"""What a bounded context brings to the product, in one typed object: its manifest.

Each context (`fulfilment/catalogue`, `coldchain/loggers`, `printing`, …) defines
`MANIFEST = Manifest(...)` in its `module.py`. The composition roots never list a context's
tables, jobs, routes or pages themselves: they read the one list of contexts
(`api/contexts.py`) and take everything from the manifests, so adding a context means its
own folder plus one line there (docs/architecture.md, "Adding a context").

- its Piccolo app is `<name>.piccolo_app` by convention (`piccolo_app_module`), so
  `piccolo_conf` finds every app without importing the rest of the contexts;
- `jobs`: its `@job`s, cron ones included (the schedule is declared on the job itself);
- `seed`: an async function adding its part of the fictional demo to a `SeedReport`;
- `controllers`: its JSON API controllers (mounted as they are, under `/api/...`);
- `pages`: its page controllers (mounted on the pages' router: HTML errors, page headers);
- `nav`: its main-menu entries; `templates`: its template folder (templates inside it sit in
  a sub-folder named for the context);
- `cli`: its `infusion <name> …` command group.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from piccolo.conf.apps import AppConfig

from core.web.navigation import NavItem

if TYPE_CHECKING:
    import click

    from core.queue import JobDef


@dataclass
class SeedReport:
    """What a demo seed created, and the logins `infusion dev` may show."""

    created: dict[str, int] = field(default_factory=dict)
    logins: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, what: str, count: int) -> None:
        self.created[what] = self.created.get(what, 0) + count

    def summary(self) -> str:
        made = ", ".join(f"{n} {what}" for what, n in self.created.items() if n)
        return f"demo data: created {made}" if made else "demo data: already present"


Seeder = Callable[[SeedReport], Awaitable[None]]


def piccolo_app_module(package: str) -> str:
    """Where a context's Piccolo `APP_CONFIG` lives: one room, one name, for every context."""
    return f"{package}.piccolo_app"


def context_app_config(
    package: str, app_name: str, tables: Sequence[Any], *, uses: Sequence[str] = ()
) -> AppConfig:
    """A context's Piccolo app: its tables, its own migration chain in its
    `piccolo_migrations/`, and the contexts whose tables its foreign keys may point at (`uses`,
    along the dependency direction; core always)."""
    folder = Path(importlib.import_module(package).__file__ or "").parent
    return AppConfig(
        app_name=app_name,
        migrations_folder_path=str(folder / "piccolo_migrations"),
        table_classes=list(tables),
        migration_dependencies=[piccolo_app_module(p) for p in ("core", *uses)],
        commands=[],
    )


@dataclass(frozen=True, kw_only=True)
class Manifest:
    name: str
    jobs: tuple[JobDef, ...] = ()
    seed: Seeder | None = None
    controllers: tuple[Any, ...] = ()
    pages: tuple[Any, ...] = ()
    nav: tuple[NavItem, ...] = ()
    templates: Path | None = None
    cli: click.Group | None = None

    @property
    def piccolo_app(self) -> str:
        return piccolo_app_module(self.name)

    def __post_init__(self) -> None:
        names = [job.name for job in self.jobs]
        if len(names) != len(set(names)):
            raise ValueError(f"context {self.name!r} lists a job twice")
        if self.templates is not None and not self.templates.is_dir():
            raise ValueError(f"context {self.name!r}: no template folder at {self.templates}")
