"""The PostgreSQL pool's connections: reset on every release, unless the use changed nothing.

A pooled connection goes from one request to the next, so whatever session state one request
leaves on it (a `SET`, a session advisory lock, an open cursor, a `LISTEN`, a temporary table)
would reach the next. asyncpg resets a connection when it is released (`SELECT
pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`), which leaves temporary tables
behind: `PooledConnection` adds `DISCARD TEMP`.

That reset is one more round trip to PostgreSQL on every release, as costly as the query
itself when the query is `SELECT 1`: it doubled the database work of `/health`, which load
balancers and monitors call all day (docs/benchmarks.md). A use that provably changed no
session state may say so (`mark_state_unchanged()`, after it succeeded) and the release skips
the reset; any other use, and any use that failed or was cancelled, is reset. Only the health
check (`core.db.ping_database`) says so: it ran one `SELECT 1` on a connection that was itself
reset (or fresh) when it was acquired.
"""

from __future__ import annotations

from typing import Any

import asyncpg


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    # Set only by a use that changed no session state; cleared by every release.
    _state_unchanged = False

    def get_reset_query(self) -> str:
        # asyncpg documents overriding this method to change what a release runs.
        return super().get_reset_query() + "\nDISCARD TEMP;"

    def mark_state_unchanged(self) -> None:
        """This use changed no session state (call it last, only after the use succeeded)."""
        self._state_unchanged = True


async def reset_on_release(connection: Any) -> None:
    """The pool's `reset`: asyncpg has already rolled back an open transaction and dropped
    listener callbacks; this clears the session state, unless the use said it changed none."""
    if getattr(connection, "_state_unchanged", False):
        connection._state_unchanged = False
        return
    query = connection.get_reset_query()
    if query:
        await connection.execute(query)


def pool_options() -> dict[str, Any]:
    """What `asyncpg.create_pool` (through Piccolo's engine) needs for the above."""
    return {"connection_class": PooledConnection, "reset": reset_on_release}
