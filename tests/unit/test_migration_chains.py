"""One migration chain per Piccolo app: two heads (two migrations written on two branches after
the same parent) fail here until one is made to follow the other."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.architecture import chain_problems, read_migrations


def _apps():
    from piccolo.conf.apps import Finder

    return Finder().get_app_configs()


@pytest.mark.parametrize("app", _apps(), ids=lambda a: a.app_name)
def test_each_app_has_one_migration_chain(app):
    assert chain_problems(app.app_name, read_migrations(Path(app.migrations_folder_path))) == []


def test_every_app_name_is_unique():
    names = [app.app_name for app in _apps()]
    assert sorted(names) == sorted(set(names))


def _migration(folder: Path, name: str, id_: str, parent: str | None, *, declare=True) -> None:
    parent_line = f"PARENT = {parent!r}\n" if declare else ""
    (folder / name).write_text(
        f'ID = "{id_}"\nVERSION = "1.38.0"\n{parent_line}DESCRIPTION = "x"\n'
    )


def test_two_heads_are_found(tmp_path: Path):
    _migration(tmp_path, "a.py", "2026-01-01T00:00:00:000000", None)
    _migration(tmp_path, "b.py", "2026-01-02T00:00:00:000000", "2026-01-01T00:00:00:000000")
    _migration(tmp_path, "c.py", "2026-01-03T00:00:00:000000", "2026-01-01T00:00:00:000000")
    assert chain_problems("orders", read_migrations(tmp_path)) == [
        "orders: two heads: b.py, c.py both come after 2026-01-01T00:00:00:000000; give one of "
        "them the other as its PARENT (a merge)"
    ]


def test_a_missing_or_unknown_parent_and_a_chain_out_of_id_order_are_found(tmp_path: Path):
    _migration(tmp_path, "a.py", "2026-01-01T00:00:00:000000", None)
    _migration(tmp_path, "b.py", "2026-01-02T00:00:00:000000", "2025-12-31T00:00:00:000000")
    _migration(tmp_path, "c.py", "2026-01-03T00:00:00:000000", None, declare=False)
    assert chain_problems("orders", read_migrations(tmp_path)) == [
        "orders: b.py follows unknown 2025-12-31T00:00:00:000000",
        "orders: c.py declares no PARENT (the ID of the migration before it, or None for the "
        "first)",
    ]
    (tmp_path / "b.py").unlink()
    (tmp_path / "c.py").unlink()
    _migration(tmp_path, "b.py", "2026-01-02T00:00:00:000000", "2026-01-03T00:00:00:000000")
    _migration(tmp_path, "c.py", "2026-01-03T00:00:00:000000", "2026-01-01T00:00:00:000000")
    assert chain_problems("orders", read_migrations(tmp_path)) == [
        "orders: the PARENT chain does not run in ID order: ['2026-01-01T00:00:00:000000', "
        "'2026-01-03T00:00:00:000000', '2026-01-02T00:00:00:000000']"
    ]
