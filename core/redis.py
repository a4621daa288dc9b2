"""The Redis client the app uses for sessions, login throttling and page data (not arq's)."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


def make_redis(url: str) -> Redis:
    # One retry on a dropped connection: after Redis restarts, the first command on each
    # pooled connection fails once; the retry makes recovery invisible to callers.
    return Redis.from_url(
        url,
        socket_timeout=2,
        socket_connect_timeout=2,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError],
        health_check_interval=30,
    )
