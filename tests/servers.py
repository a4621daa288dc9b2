"""Which PostgreSQL and Redis the tests use, decided once in the pytest controller.

DATABASE_URL / REDIS_URL when set; else the servers on 127.0.0.1:5432 / 6379 when they answer;
else embedded servers under `.infusion/test` (started here, stopped when pytest ends). Worker
processes inherit the answer through the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.embedded import Servers, reachable, start_servers

PG_ADMIN_ENV = "INFUSION_TEST_PG_ADMIN_URL"
RUN_ID_ENV = "INFUSION_TEST_RUN_ID"
REDIS_BASE_ENV = "INFUSION_TEST_REDIS_URL"
ROOT = Path(__file__).resolve().parent.parent


def resolve_servers() -> Servers | None:
    """Set PG_ADMIN_ENV and REDIS_BASE_ENV; return embedded servers to stop at the end."""
    if os.environ.get(PG_ADMIN_ENV) and os.environ.get(REDIS_BASE_ENV):
        return None  # a parent process (the xdist controller) decided already
    # Databases are named after this run, so two test runs on one server never drop each
    # other's databases.
    os.environ[RUN_ID_ENV] = str(os.getpid())
    # INFUSION_TEST_EMBEDDED=1 tries the bare-machine path on a machine that has servers.
    local = os.environ.get("INFUSION_TEST_EMBEDDED") != "1"
    database_url = os.environ.get("DATABASE_URL") or (
        "postgresql://postgres@127.0.0.1:5432/postgres"
        if local and reachable("127.0.0.1", 5432)
        else None
    )
    redis_url = os.environ.get("REDIS_URL") or (
        "redis://127.0.0.1:6379/0" if local and reachable("127.0.0.1", 6379) else None
    )
    servers = start_servers(
        database_url=database_url, redis_url=redis_url, data_dir=ROOT / ".infusion" / "test"
    )
    os.environ[PG_ADMIN_ENV] = servers.database_url
    os.environ[REDIS_BASE_ENV] = servers.redis_url
    return servers if servers.embedded else None


def database_name(worker_id: str) -> str:
    return f"infusion_test_{os.environ.get(RUN_ID_ENV, '0')}_{worker_number(worker_id)}"


def worker_number(worker_id: str) -> int:
    """gw0 → 0, gw1 → 1; a run without xdist is worker 0."""
    return int(worker_id[2:]) if worker_id.startswith("gw") else 0


CLAIM_KEY = "infusion:test-redis-db:{}"
CLAIM_SECONDS = 3 * 3600


def claim_redis_db(base_url: str, owner: str) -> int:
    """Claim a Redis database (1…15) no other test worker, of this run or another, is using.

    Tests flush their database before each test, so two runs sharing one would wipe each
    other's sessions and queues. Claims are keys in db 0, taken with SET NX (atomic) and
    released at the end of the session; a crashed run's claims expire after three hours.
    """
    import redis

    client = redis.Redis.from_url(base_url)
    try:
        for db in range(1, 16):
            if client.set(CLAIM_KEY.format(db), owner, nx=True, ex=CLAIM_SECONDS):
                return db
    finally:
        client.close()
    raise RuntimeError(
        "all 15 Redis test databases are claimed by other test workers; wait for them or "
        f"delete the keys {CLAIM_KEY.format('*')} in Redis db 0"
    )


def release_redis_db(base_url: str, db: int, owner: str) -> None:
    import redis

    client = redis.Redis.from_url(base_url)
    try:
        if client.get(CLAIM_KEY.format(db)) == owner.encode():
            client.delete(CLAIM_KEY.format(db))
    finally:
        client.close()


def redis_url_for(base_url: str, db: int) -> str:
    """The base URL pointed at database `db`."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(base_url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query))
        query["db"] = str(db)
        # urlunsplit drops the empty authority (unix:/path), which redis-py does not accept.
        return f"unix://{parts.path}?{urlencode(query)}"
    return urlunsplit(parts._replace(path=f"/{db}"))
