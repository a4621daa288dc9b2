"""The main menu. A page that belongs in it adds one `NavItem` to `NAV` (see docs/frontend.md).

An item lists the roles that may see it, the same roles its page handler's guard requires:
a packer is not shown a link that would answer 403.
"""

from __future__ import annotations

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


NAV: tuple[NavItem, ...] = (NavItem(label="Home", path="/", testid="nav-home"),)


@dataclass(frozen=True)
class NavLink:
    label: str
    path: str
    testid: str
    current: bool


def nav_for(user: Any, path: str) -> list[NavLink]:
    """The items this user may see, with the one for the page being shown marked current."""
    if user is None:
        return []
    roles = frozenset(getattr(user, "roles", ()) or ())
    return [
        NavLink(label=item.label, path=item.path, testid=item.testid, current=item.is_current(path))
        for item in NAV
        if item.visible_to(roles)
    ]
