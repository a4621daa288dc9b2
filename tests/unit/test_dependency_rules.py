"""The dependency direction of docs/architecture.md, on every import statement and every foreign
key, and no import circles; each check also runs on a deliberately broken example."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.architecture import (
    direction_problems,
    foreign_key_problems,
    import_cycles,
    imports_of,
    may_use,
    unit_of,
)


def test_every_import_follows_the_dependency_direction():
    assert direction_problems() == []


def test_no_module_imports_in_a_circle():
    assert import_cycles() == []


def test_every_foreign_key_follows_the_dependency_direction():
    from api.contexts import manifests
    from tests.architecture import _app_config

    tables = [t for m in manifests() for t in _app_config(m.piccolo_app).table_classes]
    assert tables, "core's tables at least"
    assert foreign_key_problems(tables) == []


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("fulfilment.compounding", "fulfilment.orders", True),
        ("fulfilment.compounding", "fulfilment.catalogue", True),
        ("fulfilment.orders", "fulfilment.compounding", False),
        ("fulfilment.shipments", "fulfilment.carriers", True),
        ("fulfilment.carriers", "fulfilment.shipments", False),
        ("fulfilment.shipments", "fulfilment.compounding", True),
        ("fulfilment.catalogue", "fulfilment.carriers", False),
        ("coldchain.packout", "coldchain.loggers", False),
        ("coldchain.loggers", "printing", False),
        ("coldchain.packout", "fulfilment.catalogue", False),
        ("coldchain.packout", "fulfilment", False),
        ("printing", "fulfilment.orders", False),
        ("fulfilment.catalogue", "coldchain.packout", True),
        ("core", "printing", False),
        ("core", "api", False),
        ("frontend", "api", False),
        ("api", "frontend", True),
        ("fulfilment.catalogue", "frontend", False),
        ("fulfilment.catalogue", "core", True),
    ],
)
def test_the_direction_between_two_units(importer, imported, allowed):
    assert may_use(importer, imported) is allowed


def test_a_module_belongs_to_the_longest_unit_that_names_it():
    assert unit_of("fulfilment.catalogue.services") == "fulfilment.catalogue"
    assert unit_of("core.web.guards") == "core"
    assert unit_of("fulfilment") == "fulfilment"
    assert unit_of("tests.unit") is None


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_direction_check_fails_on_a_broken_example(tmp_path: Path):
    root = _tree(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/db.py": "def f():\n    from api.app import create_app\n",
            "coldchain/__init__.py": "",
            "coldchain/packout/__init__.py": "",
            "coldchain/packout/model.py": "from coldchain.loggers import analysis\n",
            "coldchain/loggers/__init__.py": "",
            "coldchain/loggers/analysis.py": "import fulfilment.catalogue.model\n",
            "fulfilment/__init__.py": "",
            "fulfilment/catalogue/__init__.py": "",
            "fulfilment/catalogue/model.py": "from fulfilment.orders import services\n",
            "fulfilment/orders/__init__.py": "",
            "fulfilment/orders/services.py": "from fulfilment.catalogue import model\n",
            "api/__init__.py": "",
            "api/app.py": "",
        },
    )
    assert direction_problems(root, ("core", "coldchain", "fulfilment", "api")) == [
        "coldchain.loggers.analysis imports fulfilment.catalogue.model "
        "(coldchain.loggers must not use fulfilment.catalogue)",
        "coldchain.packout.model imports coldchain.loggers.analysis "
        "(coldchain.packout must not use coldchain.loggers)",
        "core.db imports api.app (core must not use api)",
        "fulfilment.catalogue.model imports fulfilment.orders.services "
        "(fulfilment.catalogue must not use fulfilment.orders)",
    ]


def test_the_cycle_check_fails_on_a_broken_example(tmp_path: Path):
    root = _tree(
        tmp_path,
        {
            "api/__init__.py": "",
            "api/cli.py": "from api.cli_users import users\n",
            "api/cli_users.py": "def f():\n    from api.cli import main\n",
            "api/app.py": "from frontend import pages\n",
            "frontend/__init__.py": "",
            "frontend/pages.py": "from api import app\n",
            "frontend/ok.py": "from frontend import pages\n",
        },
    )
    assert import_cycles(root, ("api", "frontend")) == [
        ["api.app", "frontend.pages"],
        ["api.cli", "api.cli_users"],
    ]


def test_the_import_reader_sees_imports_inside_functions_and_relative_ones(tmp_path: Path):
    root = _tree(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/db.py": "",
            "core/x.py": "def f():\n    from fulfilment.orders import Order\n    import api.app\n"
            "from . import db\nfrom .db import engine\n",
        },
    )
    assert imports_of(root / "core/x.py", root) == {"fulfilment.orders", "api.app", "core.db"}


def test_the_foreign_key_check_fails_on_a_broken_example():
    from piccolo.columns import ForeignKey
    from piccolo.table import Table

    class Lot(Table):
        pass

    class Reading(Table):
        lot = ForeignKey(references=Lot)

    class Shipment(Table):
        lot = ForeignKey(references=Lot)

    Lot.__module__ = "fulfilment.catalogue.tables"
    Reading.__module__ = "coldchain.loggers.tables"
    Shipment.__module__ = "fulfilment.shipments.tables"
    assert foreign_key_problems([Lot, Reading, Shipment]) == [
        "Reading.lot (coldchain.loggers) points at Lot (fulfilment.catalogue)"
    ]
