"""SQLite backend: one aiosqlite connection in autocommit mode, WAL journal."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiosqlite

from flowtrail.errors import StoreError, StoreUnavailableError
from flowtrail.status import RunStatus
from flowtrail.store import common
from flowtrail.store.migrate import Migration, MigrationTarget
from flowtrail.store.sqlstore import Row, SqlStore

# busy_timeout first: switching to WAL needs a lock another process may be holding.
_PRAGMAS = (
    "PRAGMA busy_timeout=5000",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)

# Errors that mean "the database cannot be used right now" rather than "this statement
# is wrong": the caller may retry or fall back.
_UNAVAILABLE = ("unable to open", "database is locked", "disk i/o error", "readonly database")


def sqlite_path(url: str) -> str:
    """``sqlite:///relative.db`` -> ``relative.db``; ``sqlite:////abs.db`` -> ``/abs.db``."""
    prefix = "sqlite://"
    if not url.startswith(prefix):
        raise StoreError(f"not a SQLite URL: {common.redact_url(url)}")
    rest = url[len(prefix) :]
    if not rest.startswith("/") or "?" in rest:
        raise StoreError(
            f"SQLite URL must look like sqlite:///relative/path.db or sqlite:////abs/path.db, "
            f"got {url!r}"
        )
    path = rest[1:]
    if not path:
        raise StoreError(f"SQLite URL has no path: {url!r}")
    return path


def split_statements(script: str) -> list[str]:
    """Split a script into statements (``executescript`` would commit our transaction)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in pending.splitlines()
    ):
        raise StoreError(f"incomplete SQL statement at the end of a migration: {pending!r}")
    return statements


class SqliteStore(SqlStore):
    backend = "sqlite"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.path = sqlite_path(url)
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        if self._db is not None:
            return
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailableError(f"cannot open SQLite store {self.url}: {exc}") from exc
        self._db.row_factory = sqlite3.Row
        try:
            for pragma in _PRAGMAS:
                await self._fetch(pragma, {})
        except StoreError as exc:
            await self.close()
            raise StoreUnavailableError(f"cannot open SQLite store {self.url}: {exc}") from exc

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    async def _fetch(self, sql: str, params: Mapping[str, Any], *, hot: bool = False) -> list[Row]:
        # ``hot`` needs nothing here: sqlite3 keeps a per-connection statement cache.
        if self._db is None:
            raise StoreError("the store is not open; await store.open() first")
        self.round_trips += 1
        try:
            rows = await self._db.execute_fetchall(sql, params)
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            raise self._translate(exc) from exc
        return [dict(row) for row in rows]

    def _translate(self, exc: Exception) -> StoreError:
        message = f"SQLite store {self.url}: {exc}"
        if isinstance(exc, sqlite3.OperationalError) and any(
            marker in str(exc).lower() for marker in _UNAVAILABLE
        ):
            return StoreUnavailableError(message)
        return StoreError(message)

    def _ts(self, value: Any) -> Any:
        return common.ts_text(value)

    def _statuses(self, statuses: Iterable[RunStatus]) -> Any:
        return json.dumps([str(s) for s in statuses])

    def _migration_target(self) -> MigrationTarget:
        return _SqliteMigrations(self)


class _SqliteMigrations:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    @asynccontextmanager
    async def locked_transaction(self) -> AsyncIterator[None]:
        store = self._store
        async with store._lock:
            # IMMEDIATE takes the write lock now, so two migrators queue (busy_timeout)
            # instead of both reading "not applied" and colliding on the DDL.
            await store._fetch("BEGIN IMMEDIATE", {})
            try:
                yield
            except BaseException:
                with suppress(StoreError):
                    await store._fetch("ROLLBACK", {})
                raise
            await store._fetch("COMMIT", {})

    async def applied_versions(self) -> set[str]:
        present = await self._store._q_unlocked("migrations_table_exists", {})
        if not present[0]["present"]:
            return set()
        rows = await self._store._q_unlocked("applied_versions", {})
        return {str(row["version"]) for row in rows}

    async def apply(self, migration: Migration) -> None:
        for statement in split_statements(migration.sql):
            await self._store._fetch(statement, {})
        now = self._store._ts(common.utcnow())
        await self._store._q_unlocked(
            "record_migration", {"version": migration.version, "now": now}
        )
