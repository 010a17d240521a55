"""A blocking connection of its own, for code that must reach the database while the
event loop cannot: the lease heartbeat runs in a thread, so that a block hogging the
loop (CPU-bound async code) does not make its run look dead.

It runs the same named queries as the async store; only the driver differs (``sqlite3``
or psycopg's blocking connection).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flowtrail.errors import StoreError, StoreUnavailableError
from flowtrail.store import common
from flowtrail.store.queries import load_queries
from flowtrail.store.records import LeaseRenewal


def backend_of(url: str) -> str:
    scheme = url.partition("://")[0]
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgres"
    raise StoreError(f"unsupported store URL {common.redact_url(url)!r}")


class BlockingStore:
    """A lazily (re)connected blocking connection; one thread uses it at a time."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url
        self.backend = backend_of(url)
        self.timeout = timeout
        self._queries = load_queries(self.backend)
        self._conn: Any = None
        self._lock = threading.Lock()
        # The driver's errors: psycopg is imported only for a PostgreSQL URL, as the
        # async store does (a SQLite user never loads it).
        self._errors: tuple[type[Exception], ...] = (sqlite3.Error, OSError)

    def _connect(self) -> Any:
        if self.backend == "sqlite":
            from flowtrail.store.sqlite import sqlite_path

            conn = sqlite3.connect(
                f"file:{sqlite_path(self.url)}?mode=rw",
                uri=True,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous=NORMAL")
            return conn
        import psycopg
        from psycopg.rows import dict_row

        self._errors = (psycopg.Error, OSError)
        return psycopg.connect(
            self.url, autocommit=True, row_factory=dict_row, connect_timeout=int(self.timeout)
        )

    def _ts(self, value: datetime | None) -> Any:
        return common.ts_text(value) if self.backend == "sqlite" else value

    def fetch(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run one named query; a broken connection is dropped and reopened next time."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                cursor = self._conn.execute(self._queries[name], params)
                rows = cursor.fetchall() if cursor.description else []
                return [dict(row) for row in rows]
            except self._errors as exc:
                self._drop()
                raise StoreUnavailableError(
                    f"{common.redact_url(self.url)}: {exc}".strip()
                ) from exc

    def renew_lease(
        self,
        run_id: str,
        epoch: int,
        lease_seconds: float,
        loop_lag_ms: int | None = None,
        loop_blocked_since: datetime | None = None,
    ) -> LeaseRenewal:
        params = common.lease_params(
            run_id,
            epoch,
            common.utcnow(),
            lease_seconds,
            self._ts,
            loop_lag_ms,
            loop_blocked_since,
        )
        return common.lease_renewal(self.fetch("renew_lease", params))

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                conn.close()

    def close(self) -> None:
        with self._lock:
            self._drop()
