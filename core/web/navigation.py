"""The main menu: each context's manifest declares its `NavItem`s (core.manifest), the app
factory collects them in context order into `app.state.nav`, and every page shows the items
its user may see.

An item lists the roles that may see it, the same roles its page handler's guard requires:
a packer is not shown a link that would answer 403.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class NavItem:
    label: str
    path: str
    testid: str
    roles: frozenset[str] | None = None  # None: every signed-in staff member

    def visible_to(self, user_roles: frozenset[str]) -> bool:
        return self.roles is None or bool(self.roles & user_roles)

    def is_current(self, path: str) -> bool:
        if self.path == "/":
            return path == "/"
        return path == self.path or path.startswith(self.path.rstrip("/") + "/")


@dataclass(frozen=True)
class NavLink:
    label: str
    path: str
    testid: str
    current: bool


def nav_for(user: Any, path: str, items: Iterable[NavItem]) -> list[NavLink]:
    """The items this user may see, with the one for the page being shown marked current."""
    if user is None:
        return []
    roles = frozenset(getattr(user, "roles", ()) or ())
    return [
        NavLink(label=item.label, path=item.path, testid=item.testid, current=item.is_current(path))
        for item in items
        if item.visible_to(roles)
    ]
