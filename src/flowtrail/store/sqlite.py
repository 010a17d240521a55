"""SQLite backend: one aiosqlite connection in autocommit mode, WAL journal.

The file is opened by URI with ``mode=rwc`` only when the caller may create it (running
a workflow); readers open it ``mode=rw``, so a mistyped path or a deleted file is an
error, never a new empty database.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiosqlite

from flowtrail.errors import DatabaseNotFoundError, StoreError, StoreUnavailableError
from flowtrail.store import common
from flowtrail.store.migrate import Migration, MigrationTarget
from flowtrail.store.records import Finalization, FinalizeOutcome
from flowtrail.store.sqlstore import Row, SqlStore

_FileId = tuple[int, int]

# busy_timeout first: switching to WAL needs a lock another process may be holding.
_BUSY_TIMEOUT = "PRAGMA busy_timeout=5000"
_PRAGMAS = (
    _BUSY_TIMEOUT,
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)

# Errors that mean "the database cannot be used right now" rather than "this statement
# is wrong": the caller may retry or fall back.
# A full disk and a read-only file are among them: both can be fixed while the run waits,
# and the terminal write retries them like an outage.
_UNAVAILABLE = (
    "unable to open",
    "database is locked",
    "disk i/o error",
    "readonly database",
    "database or disk is full",
)


class _Locked(Exception):
    """Another connection holds the write lock: the write goes where it may wait."""


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

    def __init__(self, url: str, *, create: bool = True) -> None:
        super().__init__(url)
        self.path = sqlite_path(url)
        self._abspath = self.path if self.path == ":memory:" else os.path.abspath(self.path)
        self.create = create
        self._db: aiosqlite.Connection | None = None
        self._file: _FileId | None = None
        self._busy = threading.Lock()  # held by whichever thread is using the connection
        self._waits = True  # busy_timeout is 5 s (False: 0, as the loop's thread left it)

    def _file_id(self) -> _FileId | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    async def open(self) -> None:
        if self._db is not None:
            return
        memory = self.path == ":memory:"
        if (
            not memory
            and not self.create
            and not await asyncio.to_thread(os.path.isfile, self._abspath)
        ):
            raise DatabaseNotFoundError(
                f"no flowtrail database at {self.url} (the file does not exist; "
                "reading never creates one)"
            )
        try:
            if memory:
                self._db = await aiosqlite.connect(
                    self.path, isolation_level=None, check_same_thread=False
                )
            else:
                if self.create:
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                mode = "rwc" if self.create else "rw"
                uri = f"file:{quote(self._abspath)}?mode={mode}"
                # check_same_thread off: progress writes may run on the event loop's
                # thread, always under the store's lock, never beside the connection's
                # own thread.
                self._db = await aiosqlite.connect(
                    uri, isolation_level=None, uri=True, check_same_thread=False
                )
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailableError(f"cannot open SQLite store {self.url}: {exc}") from exc
        self._db.row_factory = sqlite3.Row
        self._waits = True  # _PRAGMAS set busy_timeout first
        self._file = None if memory else self._file_id()
        try:
            for pragma in _PRAGMAS:
                await self._fetch(pragma, {})
        except StoreError as exc:
            await self.close()
            raise StoreUnavailableError(f"cannot open SQLite store {self.url}: {exc}") from exc

    async def close(self) -> None:
        self._snapshots_stored.clear()  # a reopened store (a replaced file) checks again
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    async def finalize(self, run_id: str, fin: Finalization) -> FinalizeOutcome:
        """The terminal write goes to the file at the path, not to a file that was deleted
        or replaced since it was opened (the open handle would still accept the write,
        into a file nobody can read again, and the run would say it was recorded)."""
        if self._file is not None and self._file_id() != self._file:
            await self.close()
            self.create = False  # a deleted database is not silently recreated
            await self.open()  # DatabaseNotFoundError when it is gone for good
        return await super().finalize(run_id, fin)

    async def _fetch(self, sql: str, params: Mapping[str, Any], *, hot: bool = False) -> list[Row]:
        # ``hot`` needs nothing here: sqlite3 keeps a per-connection statement cache.
        db = self._open_db()

        def fetch() -> list[Row]:
            return [dict(row) for row in db._conn.execute(sql, params).fetchall()]

        self.round_trips += 1
        try:
            return await db._execute(self._on_thread(fetch))  # type: ignore[no-untyped-call,no-any-return]
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            raise self._translate(exc) from exc

    async def _fetch_with_steps(
        self, name: str, params: Mapping[str, Any], steps: list[Row]
    ) -> list[Row]:
        write = self._writer(name, params, steps)
        self.round_trips += 1
        try:
            if name == "write_progress":
                with suppress(_Locked):
                    return self._on_loop(write)
            # aiosqlite's queueing call (the one its own execute uses) hands the whole
            # function to the connection thread at once: one hop there and back.
            return await self._open_db()._execute(self._on_thread(write))  # type: ignore[no-untyped-call,no-any-return]
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            raise self._translate(exc) from exc

    def _progress_now(self, params: Mapping[str, Any], steps: list[Row]) -> list[Row] | None:
        if self._db is None:
            return None
        write = self._writer("write_progress", params, steps)
        self.round_trips += 1
        try:
            return self._on_loop(write)
        except _Locked:
            self.round_trips -= 1
            return None
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            raise self._translate(exc) from exc

    def _open_db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("the store is not open; await store.open() first")
        return self._db

    def _writer(
        self, name: str, params: Mapping[str, Any], steps: list[Row]
    ) -> Callable[[], list[Row]]:
        """Query ``name`` and the step upserts in one transaction, as a function for
        :meth:`_on_loop` or :meth:`_on_thread` to run."""
        db = self._open_db()
        statement, upsert = self._queries[name], self._queries["write_steps"]

        def write() -> list[Row]:
            conn = db._conn
            if not steps:
                return [dict(row) for row in conn.execute(statement, params).fetchall()]
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = [dict(row) for row in conn.execute(statement, params).fetchall()]
                if rows:  # the run took the write: its steps go under its epoch
                    epoch = rows[0]["lease_epoch"]
                    run_id = params["id"]
                    conn.executemany(
                        upsert, [{**step, "run_id": run_id, "epoch": epoch} for step in steps]
                    )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return rows

        return write

    def _on_thread(self, work: Callable[[], list[Row]]) -> Callable[[], list[Row]]:
        """``work`` as the connection's thread runs it: holding ``_busy``, and with
        ``busy_timeout`` back at 5 s if the event loop's thread last set it to 0."""
        db = self._open_db()

        def run() -> list[Row]:
            with self._busy:
                if not self._waits:
                    db._conn.execute(_BUSY_TIMEOUT)
                    self._waits = True
                return work()

        return run

    def _on_loop(self, write: Callable[[], list[Row]]) -> list[Row]:
        """A progress write right here, on the event loop's thread, when the database is
        free: it takes microseconds (synchronous=NORMAL: a WAL append, no fsync), far less
        than handing it to the connection's thread and back. It raises :class:`_Locked`
        instead of waiting when it cannot go now: the connection's thread is still busy
        with an earlier statement (one whose caller was cancelled, say), a transaction is
        open on it, or another process holds the write lock (``busy_timeout`` is 0 here;
        it stays 0 until the connection's thread next needs it, see :meth:`_on_thread`).
        The write then goes to the connection's thread, which may wait."""
        if not self.progress_on_loop or not self._busy.acquire(blocking=False):
            raise _Locked
        try:
            conn = self._open_db()._conn
            if conn.in_transaction:
                raise _Locked
            if self._waits:
                conn.execute("PRAGMA busy_timeout=0")
                self._waits = False
            try:
                return write()
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc).lower() or "busy" in str(exc).lower():
                    raise _Locked from exc
                raise
        finally:
            self._busy.release()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        async with self._lock:
            await self._fetch("BEGIN IMMEDIATE", {})
            try:
                yield
            except BaseException:
                with suppress(StoreError):
                    await self._fetch("ROLLBACK", {})
                raise
            await self._fetch("COMMIT", {})

    def _translate(self, exc: Exception) -> StoreError:
        message = f"SQLite store {self.url}: {exc}"
        if isinstance(exc, sqlite3.OperationalError) and any(
            marker in str(exc).lower() for marker in _UNAVAILABLE
        ):
            return StoreUnavailableError(message)
        return StoreError(message)

    def _ts(self, value: Any) -> Any:
        return common.ts_text(value)

    def _text_list(self, values: Iterable[str]) -> Any:
        return json.dumps([str(v) for v in values])

    def _param(self, name: str, sql_type: str) -> str:
        return f":{name}"

    def _migration_target(self) -> MigrationTarget:
        return _SqliteMigrations(self)


class _SqliteMigrations:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    @asynccontextmanager
    async def locked_transaction(self) -> AsyncIterator[None]:
        # IMMEDIATE takes the write lock now, so two migrators queue (busy_timeout)
        # instead of both reading "not applied" and colliding on the DDL.
        async with self._store._transaction():
            yield

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
