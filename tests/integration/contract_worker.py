"""A real arq worker for the job-contract jobs, in a process of its own:
`python -m tests.integration.contract_worker [--burst] [JOB_NAME...]` (DATABASE_URL,
REDIS_URL, STEP_DIR). Naming jobs serves only those: arq holds a killed worker's job for the
longest timeout it serves + 10 s."""

from __future__ import annotations

import asyncio
import os
import sys

from arq.worker import Worker

from core import db, queue
from core.logging import configure_logging
from tests.integration.contract_jobs import CONTRACT_JOBS


async def main(burst: bool, names: list[str]) -> None:
    configure_logging(level="INFO", fmt="json")
    await db.open_pool(os.environ["DATABASE_URL"], max_size=2)
    worker = Worker(
        functions=[j.arq_function() for j in CONTRACT_JOBS if not names or j.name in names],
        redis_settings=queue.redis_settings(os.environ["REDIS_URL"]),
        burst=burst,
        poll_delay=0.05,
        handle_signals=False,
        keep_result=3600,
    )
    try:
        await worker.main()
    finally:
        await worker.close()
        await db.close_pool()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main("--burst" in args, [a for a in args if a != "--burst"]))
