"""Procrastinate's tables in the flowtrail database, applied by ``flowtrail db upgrade``.

Procrastinate ships its whole schema as one script that is not idempotent, so it is
applied once: under a transaction-scoped advisory lock, and only when its job table is
absent. Two upgrades at once serialize on the lock; the second finds the table and does
nothing. A later Procrastinate release that changes its schema brings its own migration
files (see the how-to "run workers").
"""

from __future__ import annotations

import psycopg

from flowtrail.errors import StoreError
from flowtrail.store.common import redact_url

# Fixed and distinct from the flowtrail migration lock (store/sql/postgres/queries.sql).
_LOCK_KEY = 7380396448198844778
_PRESENT = "SELECT to_regclass('procrastinate_jobs') IS NOT NULL"


async def queue_schema_present(url: str) -> bool:
    """Whether Procrastinate's schema is in the database at ``url``."""
    try:
        async with await psycopg.AsyncConnection.connect(url, connect_timeout=10) as conn:
            row = await (await conn.execute(_PRESENT)).fetchone()
    except psycopg.Error as exc:
        raise StoreError(f"PostgreSQL store {redact_url(url)}: {exc}") from exc
    return bool(row and row[0])


async def apply_queue_schema(url: str) -> bool:
    """Apply Procrastinate's schema unless it is there; return True when applied now."""
    from procrastinate.schema import SchemaManager  # only db upgrade pays for the import

    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=10)
        async with conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            row = await (await conn.execute(_PRESENT)).fetchone()
            if row and row[0]:
                return False
            # No parameters: the simple protocol runs the multi-statement script.
            await conn.execute(SchemaManager.get_schema())
    except psycopg.Error as exc:
        raise StoreError(
            f"PostgreSQL store {redact_url(url)}: applying the Procrastinate schema: {exc}"
        ) from exc
    return True
