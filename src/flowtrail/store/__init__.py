"""Durable storage of runs. ``open_store(url)`` picks the backend from the URL scheme.

store = open_store("sqlite:///flowtrail.db")   # or postgresql://user@host/db
async with store:                              # or: await store.open() ... close()
    await store.migrate()
"""

from __future__ import annotations

from flowtrail.errors import StoreError
from flowtrail.store.base import Store
from flowtrail.store.common import redact_url
from flowtrail.store.records import (
    CancelOutcome,
    CompletedMarker,
    Finalization,
    FinalizeOutcome,
    NewRun,
    ProgressWrite,
    RunFilter,
    RunPage,
    RunQuery,
    RunRecord,
    StartedMarker,
    Worker,
)
from flowtrail.store.sqlstore import SqlStore

__all__ = [
    "CancelOutcome",
    "CompletedMarker",
    "Finalization",
    "FinalizeOutcome",
    "NewRun",
    "ProgressWrite",
    "RunFilter",
    "RunPage",
    "RunQuery",
    "RunRecord",
    "SqlStore",
    "StartedMarker",
    "Store",
    "Worker",
    "open_store",
]


def open_store(url: str, *, create: bool = True) -> SqlStore:
    """A store for ``url``, not yet connected: ``await store.open()`` connects.

    ``create=False`` (every read) refuses to create a SQLite file that does not exist
    (``DatabaseNotFoundError``); a PostgreSQL database is never created by flowtrail.
    """
    scheme, sep, _ = url.partition("://")
    if sep:
        if scheme == "sqlite":
            from flowtrail.store.sqlite import SqliteStore

            return SqliteStore(url, create=create)
        if scheme in ("postgresql", "postgres"):
            from flowtrail.store.postgres import PostgresStore

            return PostgresStore(url)
    raise StoreError(
        f"unsupported store URL {redact_url(url)!r}: expected sqlite:///path/to/file.db "
        "or postgresql://user@host:port/database"
    )
