"""The one list of the product's bounded contexts, in dependency order.

Everything that needs "every context" derives from this list: `piccolo_conf` (the Piccolo
apps and so the migrations), the worker and the CLI (jobs and cron), the demo seeder, the app
factory (API controllers, pages, templates) and the main menu. Adding a context is its own
folder with a `module.py` manifest (core.manifest) plus one line here
(docs/architecture.md, "Adding a context").

Order matters: a context comes after every context it depends on (the direction in
docs/architecture.md), so migrations and the demo seed run in a valid order, and the menu
reads in that order too.
"""

from __future__ import annotations

import importlib
from functools import cache

from core.manifest import Manifest, piccolo_app_module

CONTEXTS: tuple[str, ...] = (
    "core",
    "coldchain.packout",
    "coldchain.loggers",
    "printing",
    "fulfilment.catalogue",
    "fulfilment.orders",
    "fulfilment.compounding",
    "fulfilment.carriers",
    "fulfilment.shipments",
)


def piccolo_apps() -> list[str]:
    """The Piccolo app modules, read without importing the contexts' code (piccolo_conf)."""
    return [piccolo_app_module(package) for package in CONTEXTS]


@cache
def manifests() -> tuple[Manifest, ...]:
    found = []
    for package in CONTEXTS:
        module = importlib.import_module(f"{package}.module")
        manifest = getattr(module, "MANIFEST", None)
        if not isinstance(manifest, Manifest):
            raise TypeError(f"{package}.module must define MANIFEST = core.manifest.Manifest(...)")
        if manifest.name != package:
            raise ValueError(f"{package}.module's manifest is named {manifest.name!r}")
        found.append(manifest)
    return tuple(found)
