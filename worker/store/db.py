"""Connection pool with patient start-up: a worker that starts before its database waits for it."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

log = logging.getLogger(__name__)


async def create_pool(dsn: str, *, max_size: int = 4) -> asyncpg.Pool:
    return await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, command_timeout=60)


async def wait_for_pool(dsn: str, *, attempts: int | None = None, max_size: int = 4) -> asyncpg.Pool:
    """Connect, retrying with backoff; `attempts=None` retries until cancelled."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await create_pool(dsn, max_size=max_size)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as error:
            if attempts is not None and attempt >= attempts:
                raise
            delay = min(10.0, 0.5 * 2 ** min(attempt, 5))
            log.warning("PostgreSQL not reachable (%s: %s); retrying in %.1f s", type(error).__name__, error, delay)
            await asyncio.sleep(delay)


def redact_dsn(dsn: str) -> str:
    """A DSN fit for a log line: the password replaced."""
    if "@" not in dsn or "://" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
