"""Every job, route, page, table and command group a context declares is reachable through its
manifest, and what the manifests list is what the worker, the app, Piccolo and the CLI serve.
The check also runs on a deliberately broken example context."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tests.architecture import Mounted, manifest_problems, served_functions


@pytest.fixture(scope="module")
def mounted() -> Mounted:
    from piccolo.conf.apps import Finder

    from api.app import create_app
    from api.cli import main
    from api.worker import worker_kwargs
    from core.settings import load_settings

    settings = load_settings().with_urls(
        database_url="postgresql://unused/unused", redis_url="redis://unused:1/0"
    )
    kwargs = worker_kwargs(settings)
    job_names = {f.name for f in kwargs["functions"]} | {c.name for c in kwargs["cron_jobs"]}
    tables = {t for app in Finder().get_app_configs() for t in app.table_classes}
    return Mounted(
        job_names=frozenset(job_names),
        route_functions=served_functions(create_app(settings)),
        table_classes=frozenset(tables),
        cli_commands=frozenset(main.commands.values()),
    )


def test_the_contexts_are_the_ones_of_the_architecture():
    import piccolo_conf
    from api.contexts import CONTEXTS, piccolo_apps

    assert CONTEXTS == (
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
    assert piccolo_apps() == piccolo_conf.APPS


def test_every_context_has_the_same_rooms():
    from api.contexts import CONTEXTS

    root = Path(__file__).resolve().parents[2]
    rooms = ("__init__.py", "module.py", "piccolo_app.py", "tables.py", "jobs.py")
    missing = [
        f"{package}/{room}"
        for package in CONTEXTS
        for room in (*rooms, "piccolo_migrations/__init__.py")
        if not (root / package.replace(".", "/") / room).is_file()
    ]
    assert missing == []


@pytest.mark.parametrize("index", range(9))
def test_a_context_reaches_everything_through_its_manifest(index, mounted):
    from api.contexts import CONTEXTS, manifests

    package = CONTEXTS[index]
    # core's sub-packages are the kernel, not contexts; its edge is mounted by api itself.
    assert manifest_problems(package, manifests()[index], mounted) == []


def test_every_job_the_worker_serves_is_known_to_the_cli_and_the_other_way_round(mounted):
    from api.worker import context_jobs
    from core.queue import JobDef

    assert {j.name for j in context_jobs()} == set(mounted.job_names)
    assert all(isinstance(j, JobDef) for j in context_jobs())


def test_the_main_menu_and_templates_come_from_the_manifests():
    from api.app import create_app
    from api.contexts import manifests
    from core.settings import load_settings

    settings = load_settings().with_urls(
        database_url="postgresql://unused/unused", redis_url="redis://unused:1/0"
    )
    app = create_app(settings)
    expected = [item.label for m in manifests() for item in m.nav]
    assert [item.label for item in app.state.nav] == ["Home", *expected]


BROKEN = {
    "__init__.py": "",
    "jobs.py": """
        from core.queue import job

        @job("brokenctx.listed")
        async def listed() -> None: ...

        @job("brokenctx.forgotten")
        async def forgotten() -> None: ...
    """,
    "api.py": """
        from litestar import Controller, get

        class ForgottenController(Controller):
            path = "/api/brokenctx"

            @get("/", operation_id="brokenList", sync_to_thread=False)
            def list_(self) -> list[int]:
                return []
    """,
    "tables.py": """
        from piccolo.columns import Varchar
        from piccolo.table import Table

        class Orphan(Table, tablename="brokenctx_orphan"):
            name = Varchar()
    """,
    "cli.py": """
        import click

        @click.group()
        def brokenctx() -> None:
            "A group nobody mounts."
    """,
    "piccolo_app.py": """
        from piccolo.conf.apps import AppConfig

        APP_CONFIG = AppConfig(app_name="brokenctx", migrations_folder_path="", table_classes=[])
    """,
    "module.py": """
        from core.manifest import Manifest
        from brokenctx.jobs import listed

        MANIFEST = Manifest(name="brokenctx", jobs=(listed,))
    """,
}


def test_the_manifest_check_fails_on_a_broken_example(tmp_path: Path, monkeypatch, mounted):
    package = tmp_path / "brokenctx"
    package.mkdir()
    for name, text in BROKEN.items():
        (package / name).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        from brokenctx.module import MANIFEST  # type: ignore[import-not-found]

        assert manifest_problems("brokenctx", MANIFEST, mounted) == [
            "brokenctx: job brokenctx.forgotten is not in its manifest",
            "brokenctx: job brokenctx.listed is not served by the worker",
            "brokenctx: route ForgottenController is not in its manifest",
            "brokenctx: table Orphan is not in its Piccolo app",
            "brokenctx: command group brokenctx is not in its manifest",
        ]
    finally:
        from core import queue

        for name in ("brokenctx.listed", "brokenctx.forgotten"):
            queue._registry.pop(name, None)
        for name in [m for m in sys.modules if m == "brokenctx" or m.startswith("brokenctx.")]:
            del sys.modules[name]
