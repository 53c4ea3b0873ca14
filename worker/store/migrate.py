"""Schema migrations, safe when many pods start at once.

All pending files are applied in one transaction under a transaction-scoped advisory lock (a
session lock would not survive PgBouncer's transaction pooling): the first pod migrates, the
others wait, then find nothing to do. An applied file that has changed since is an error.
"""

from __future__ import annotations

import hashlib
from importlib import resources

import asyncpg

MIGRATION_LOCK_KEY = 0x7E1E_3E7A  # any constant shared by every pod of this service

_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


class MigrationError(RuntimeError):
    pass


def migration_files() -> list[tuple[str, str]]:
    folder = resources.files("worker.store") / "migrations"
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    return [(p.name.removesuffix(".sql"), p.read_text(encoding="utf-8")) for p in files]


def _checksum(sql: str) -> str:
    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; return the versions applied by this call."""
    applied_now: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(_LEDGER)
        done = {
            r["version"]: r["checksum"] for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        for version, sql in migration_files():
            if version in done:
                if done[version] != _checksum(sql):
                    raise MigrationError(
                        f"migration {version} was changed after it was applied; add a new migration instead"
                    )
                continue
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)", version, _checksum(sql)
            )
            applied_now.append(version)
    return applied_now
