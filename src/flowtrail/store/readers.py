"""Many readers beside one writer: ``ReaderPool``.

A store (``SqlStore``) is one connection, and its callers take turns on it: while a write
transaction holds it, every read through it waits. A server that answers many reads at
once (the HTTP API, the web UI) reads through a ``ReaderPool`` instead: ``size`` stores
of their own, each its own connection, handed out one caller at a time::

    async with ReaderPool(url, size=4) as pool:
        async with pool.reader() as store:
            page = await store.list_summaries(RunQuery())

On PostgreSQL each reader is a ``PostgresStore`` (its own connection, reconnecting on its
own): reads are never blocked by writers (MVCC). On SQLite each reader is an aiosqlite
connection to the same file, which the store keeps in WAL mode (write-ahead log): a reader
reads the last committed state while a writer holds a write transaction, even an
``EXCLUSIVE`` one, instead of waiting for it. Opening the pool checks that the file is in
WAL mode (``StoreError`` if it could not be put in it: WAL needs shared memory, so not a
network file system). Readers never create a database (``create=False``) and never
migrate it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Self

from flowtrail.errors import StoreError
from flowtrail.store import open_store
from flowtrail.store.common import redact_url
from flowtrail.store.sqlstore import SqlStore

DEFAULT_READERS = 4


class ReaderPool:
    """``size`` opened read stores for ``url``; ``reader()`` lends one."""

    def __init__(self, url: str, size: int = DEFAULT_READERS) -> None:
        if size < 1:
            raise StoreError(f"a reader pool needs at least one reader, got {size}")
        self.url = url
        self.size = size
        self._stores: list[SqlStore] = []
        self._idle: asyncio.Queue[SqlStore] = asyncio.Queue()

    async def open(self) -> None:
        """Open every reader (at once); on any failure, close those opened and raise."""
        if self._stores:
            return
        stores = [open_store(self.url, create=False) for _ in range(self.size)]
        if stores[0].backend == "sqlite" and getattr(stores[0], "path", "") == ":memory:":
            raise StoreError(
                "a reader pool needs a database file: each reader of sqlite:///:memory: "
                "would see an empty database of its own"
            )
        results = await asyncio.gather(*(s.open() for s in stores), return_exceptions=True)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is None and stores[0].backend == "sqlite":
            mode = (await stores[0]._fetch("PRAGMA journal_mode", {}))[0]
            if str(next(iter(mode.values()))).lower() != "wal":
                failed = StoreError(
                    f"{redact_url(self.url)} is not in WAL mode (journal_mode "
                    f"{next(iter(mode.values()))}): readers would wait for the writer"
                )
        if failed is not None:
            await asyncio.gather(*(s.close() for s in stores), return_exceptions=True)
            raise failed
        self._stores = stores
        for store in stores:
            self._idle.put_nowait(store)

    async def close(self) -> None:
        stores, self._stores = self._stores, []
        self._idle = asyncio.Queue()
        await asyncio.gather(*(s.close() for s in stores), return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[SqlStore]:
        """A reader for the ``async with`` body; waits while all ``size`` are lent."""
        if not self._stores:
            raise StoreError("the reader pool is not open; await pool.open() first")
        store = await self._idle.get()
        try:
            yield store
        finally:
            self._idle.put_nowait(store)

    def __repr__(self) -> str:
        return f"ReaderPool({redact_url(self.url)!r}, size={self.size})"
