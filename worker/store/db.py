"""The one way to reach PostgreSQL: pools with patient start-up (a worker that starts before its
database waits for it) and `connect()` for one-off commands, both with the same type codecs."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator

import asyncpg

log = logging.getLogger(__name__)

_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_FIRST = (dt.datetime.min.replace(tzinfo=dt.UTC) - _PG_EPOCH) // _MICROSECOND
_LAST = (dt.datetime.max.replace(tzinfo=dt.UTC) - _PG_EPOCH) // _MICROSECOND


def _decode_timestamptz(value: tuple) -> dt.datetime:
    """Clamped into Python's range (years 1 to 9999): PostgreSQL stores times to year 294276, and one
    row past 9999 would otherwise make every read that touches it fail."""
    return _PG_EPOCH + min(max(value[0], _FIRST), _LAST) * _MICROSECOND


def _encode_timestamptz(value: dt.datetime) -> tuple:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return ((value - _PG_EPOCH) // _MICROSECOND,)


async def prepare_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "timestamptz", schema="pg_catalog", encoder=_encode_timestamptz, decoder=_decode_timestamptz, format="tuple"
    )


async def create_pool(
    dsn: str,
    *,
    max_size: int = 4,
    statement_timeout_s: float | None = None,
    idle_in_transaction_timeout_s: float | None = None,
) -> asyncpg.Pool:
    """`statement_timeout_s`: PostgreSQL cancels longer statements (the tools' pool: a heavy read ends).
    `idle_in_transaction_timeout_s`: PostgreSQL ends a transaction its client stopped driving (a pod
    frozen mid-flush would otherwise hold its offset locks, and block the pod that took over, forever)."""
    server = {}
    if statement_timeout_s:
        server["statement_timeout"] = f"{int(statement_timeout_s * 1000)}"
    if idle_in_transaction_timeout_s:
        server["idle_in_transaction_session_timeout"] = f"{int(idle_in_transaction_timeout_s * 1000)}"
    return await asyncpg.create_pool(
        dsn, min_size=1, max_size=max_size, command_timeout=60, init=prepare_connection, server_settings=server or None
    )


@contextlib.asynccontextmanager
async def connect(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """One connection for a command-line call, closed however the call ends."""
    conn = await asyncpg.connect(dsn)
    try:
        await prepare_connection(conn)
        yield conn
    finally:
        await conn.close()


async def wait_for_pool(
    dsn: str,
    *,
    attempts: int | None = None,
    max_size: int = 4,
    statement_timeout_s: float | None = None,
    idle_in_transaction_timeout_s: float | None = None,
) -> asyncpg.Pool:
    """Connect, retrying with backoff; `attempts=None` retries until cancelled."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await create_pool(
                dsn,
                max_size=max_size,
                statement_timeout_s=statement_timeout_s,
                idle_in_transaction_timeout_s=idle_in_transaction_timeout_s,
            )
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
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


NOW = "SELECT extract(epoch FROM now())::float8"


async def db_now(conn: asyncpg.Connection) -> float:
    """Windows are judged on PostgreSQL's clock, the one the rows were compared against when written."""
    return float(await conn.fetchval(NOW))
