"""PostgreSQL backend: one psycopg 3 async connection in autocommit mode.

Callers are serialized by the store's lock. A connection found broken is replaced on the
next call, so a database restart costs the calls made while it was down, not the store.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads

from flowtrail.errors import StoreError, StoreUnavailableError
from flowtrail.status import TERMINAL_STATUSES, RunStatus
from flowtrail.store import common
from flowtrail.store.migrate import Migration, MigrationTarget
from flowtrail.store.records import EndedRunJob, JobSeen, QueueScan
from flowtrail.store.sqlstore import Row, SqlStore

Connection = psycopg.AsyncConnection[dict[str, Any]]

# SQLSTATE prefixes that mean the server cannot be used right now: connection exception,
# insufficient resources (disk full, too many connections), shutdown / "cannot connect
# now", and a read-only transaction (25006: a standby, a failover in progress, or
# default_transaction_read_only) — like SQLite's read-only file, it can clear while the
# terminal write waits. A statement timeout (57014) is not among them: retrying the same
# call won't help.
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P", "25006")

# The blocking progress connection gives up on a statement (or a silent peer) after this.
_PROGRESS_TIMEOUT_MS = 5000

# Procrastinate job statuses after which the job will not run (again).
JOB_ENDED = ("succeeded", "failed", "cancelled", "aborted")


def _json_rows(rows: list[Row]) -> str:
    """Step rows as the JSON text the statements read with ``json_to_recordset``."""
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":"))


def _raw_json(data: str | bytes) -> str:
    # JSON is decoded by the shared row mapping, identically for both backends.
    return data if isinstance(data, str) else data.decode("utf-8")


class PostgresStore(SqlStore):
    backend = "postgres"

    def __init__(self, url: str, *, connect_timeout: int = 10) -> None:
        if not url.startswith(("postgresql://", "postgres://")):
            raise StoreError(f"not a PostgreSQL URL: {common.redact_url(url)}")
        super().__init__(url)
        self.connect_timeout = connect_timeout
        self._conn: Connection | None = None
        self._is_open = False
        self._password = urlsplit(url).password
        self._progress: psycopg.Connection[dict[str, Any]] | None = None
        self._progress_connecting: asyncio.Future[None] | None = None
        self._progress_retry_at = 0.0

    async def open(self) -> None:
        if not self._is_open:
            self._conn = await self._connect()
            self._is_open = True

    async def close(self) -> None:
        self._snapshots_stored.clear()  # a reopened store checks again
        self._is_open = False
        conn, self._conn = self._conn, None
        connecting, self._progress_connecting = self._progress_connecting, None
        if connecting is not None and not connecting.done():
            # Not cancelled: its thread would finish the connect anyway and drop the
            # connection unclosed. It sees the store closed and closes it (bounded by
            # the connect timeout).
            with suppress(asyncio.CancelledError):
                await asyncio.shield(connecting)
        self._drop_progress()
        if conn is not None:
            await conn.close()

    # -- progress writes on the event loop's thread ----------------------------------------

    def _progress_now(self, params: Mapping[str, Any], steps: list[Row]) -> list[Row] | None:
        """Through a blocking connection: for a block running alone nothing else needs
        the event loop during the round trip, and the blocking driver saves asyncio's
        wake-ups around it (about half the cost). The connection is made in the
        background on first use (``None`` until then), its statements give up after 5 s
        (``statement_timeout``, ``tcp_user_timeout``), and on any connection error it is
        dropped and the write goes the async way, which reconnects; the write is
        idempotent, so repeating one that did land is harmless."""
        conn = self._progress
        if not self._is_open or conn is None or conn.closed or conn.broken:
            if self._is_open:
                self._drop_progress()
                self._connect_progress_soon()
            return None
        self.round_trips += 1
        try:
            return self._execute_progress(
                conn, self._queries["write_progress"], {**params, "steps": _json_rows(steps)}
            )
        except psycopg.OperationalError:
            self._drop_progress()
            return None
        except psycopg.Error as exc:
            message = f"PostgreSQL store {common.redact_url(self.url)}: {self._scrub(str(exc))}"
            raise StoreError(message) from exc

    @staticmethod
    def _execute_progress(
        conn: psycopg.Connection[dict[str, Any]], sql: str, args: Mapping[str, Any]
    ) -> list[Row]:
        return conn.execute(sql, args, prepare=True).fetchall()

    def _connect_progress_soon(self) -> None:
        if self._progress_connecting is not None and not self._progress_connecting.done():
            return
        if time.monotonic() < self._progress_retry_at:
            return
        self._progress_connecting = asyncio.ensure_future(self._connect_progress())

    async def _connect_progress(self) -> None:
        def connect() -> None:
            # In the thread, to the end: a cancelled caller cannot drop it unclosed.
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=min(self.connect_timeout, 5),
                application_name="flowtrail-progress",
                options=f"-c statement_timeout={_PROGRESS_TIMEOUT_MS}",
                tcp_user_timeout=_PROGRESS_TIMEOUT_MS,
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=2,
            )
            set_json_loads(_raw_json, conn)
            if self._is_open and self._progress is None:
                self._progress = conn
            else:
                conn.close()

        try:
            await asyncio.to_thread(connect)
        except psycopg.Error:
            self._progress_retry_at = time.monotonic() + 5.0  # the async path goes on

    def _drop_progress(self) -> None:
        conn, self._progress = self._progress, None
        if conn is not None:
            with suppress(psycopg.Error):
                conn.close()

    async def _connect(self) -> Connection:
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=self.connect_timeout,
                application_name="flowtrail",
            )
        except psycopg.Error as exc:
            kind = (
                StoreUnavailableError if isinstance(exc, psycopg.OperationalError) else StoreError
            )
            raise kind(
                f"cannot connect to PostgreSQL at {common.redact_url(self.url)}: "
                f"{self._scrub(str(exc))}"
            ) from exc
        set_json_loads(_raw_json, conn)
        return conn

    async def _live(self) -> Connection:
        if not self._is_open:
            raise StoreError("the store is not open; await store.open() first")
        conn = self._conn
        if conn is None or conn.broken or conn.closed:
            # Still open from the caller's view: a failed reconnect is retried next call.
            self._conn = None
            if conn is not None:
                await conn.close()
            conn = self._conn = await self._connect()
        return conn

    async def _fetch(self, sql: str, params: Mapping[str, Any], *, hot: bool = False) -> list[Row]:
        conn = await self._live()
        self.round_trips += 1
        try:
            # No parameters: the simple protocol, which also runs multi-statement scripts.
            cur = await conn.execute(sql, params or None, prepare=True if hot else None)
            return await cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            raise self._translate(exc, conn) from exc

    async def _fetch_with_steps(
        self, name: str, params: Mapping[str, Any], steps: list[Row]
    ) -> list[Row]:
        # One statement: the query's UPDATE is a CTE the steps' upsert reads its epoch from.
        args = {**params, "steps": _json_rows(steps)}
        return await self._fetch(self._queries[name], args, hot=True)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        async with self._lock:
            conn = await self._live()
            try:
                self.round_trips += 2  # BEGIN and COMMIT/ROLLBACK
                async with conn.transaction():
                    yield
            except psycopg.Error as exc:
                raise self._translate(exc, conn) from exc

    def _translate(self, exc: psycopg.Error, conn: Connection) -> StoreError:
        message = f"PostgreSQL store {common.redact_url(self.url)}: {self._scrub(str(exc))}"
        sqlstate = exc.sqlstate or ""
        if conn.broken or conn.closed or sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return StoreUnavailableError(message)
        return StoreError(message)

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    async def reconcile_scan(
        self, now: datetime, stalled_before: datetime, ended_before: datetime, limit: int = 500
    ) -> QueueScan | None:
        if not (await self._q("queue_present", {}))[0]["present"]:
            return None
        params = {
            "now": self._ts(now),
            "stalled_before": self._ts(stalled_before),
            "ended_before": self._ts(ended_before),
            "limit": max(0, limit),
            "job_ended": list(JOB_ENDED),
            "terminal": self._text_list(TERMINAL_STATUSES),
        }
        runs = tuple(
            (
                common.row_to_record(row),
                JobSeen(
                    int(row["job_id"]),
                    row["job_status"] if row["job_found"] is not None else None,
                    row["job_worker_id"],
                    row["job_worker_heartbeat"],
                ),
            )
            for row in await self._q("reconcile_runs", params)
        )
        jobs = tuple(
            EndedRunJob(
                JobSeen(int(row["job_id"]), row["job_status"], row["job_worker_id"]),
                row["run_id"],
                RunStatus(row["run_status"]),
            )
            for row in await self._q("reconcile_jobs", params)
        )
        return QueueScan(runs, jobs)

    async def cancel_job(self, job_id: int) -> bool:
        rows = await self._q("cancel_job", {"job_id": job_id})
        return rows[0]["job_id"] is not None

    @asynccontextmanager
    async def sweeper_lock(self) -> AsyncIterator[bool]:
        """A session advisory lock, tried without waiting. Should the connection break
        meanwhile, the server releases it with the session; the compare-and-set of every
        action keeps a second sweeper harmless even then."""
        held = bool((await self._q("sweeper_lock", {}))[0]["locked"])
        try:
            yield held
        finally:
            if held:
                with suppress(StoreError):
                    await self._q("sweeper_unlock", {})

    def _ts(self, value: Any) -> Any:
        return common.ts_datetime(value)

    def _text_list(self, values: Iterable[str]) -> Any:
        return [str(v) for v in values]

    def _param(self, name: str, sql_type: str) -> str:
        return f"%({name})s::{sql_type}"

    def _migration_target(self) -> MigrationTarget:
        return _PostgresMigrations(self)


class _PostgresMigrations:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    @asynccontextmanager
    async def locked_transaction(self) -> AsyncIterator[None]:
        async with self._store._transaction():
            # Held until COMMIT: a second process migrating at the same time waits
            # here, then sees the versions this one recorded.
            await self._store._q_unlocked("migration_lock", {})
            yield

    async def applied_versions(self) -> set[str]:
        present = await self._store._q_unlocked("migrations_table_exists", {})
        if not present[0]["present"]:
            return set()
        rows = await self._store._q_unlocked("applied_versions", {})
        return {str(row["version"]) for row in rows}

    async def apply(self, migration: Migration) -> None:
        await self._store._fetch(migration.sql, {})
        now = self._store._ts(common.utcnow())
        await self._store._q_unlocked(
            "record_migration", {"version": migration.version, "now": now}
        )
