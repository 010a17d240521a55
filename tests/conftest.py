"""Shared fixtures.

Store fixtures (``store``, ``store_url``, ``blank_store_url``) run every test on both
backends against real databases. PostgreSQL isolation, procrastinate style: once per
session a template database is built by running the migrations; each test then gets
``CREATE DATABASE flowtrail_t_<uuid> TEMPLATE <template>`` (prepared in the background)
and drops it afterwards. Without a server the PostgreSQL cases skip, unless
``FLOWTRAIL_REQUIRE_POSTGRES=1`` makes them fail.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from flowtrail.queue.schema import apply_queue_schema
from flowtrail.store import SqlStore, open_store
from flowtrail.store.common import redact_url

# -- store fixtures (flowtrail.store) ------------------------------------------------------

PG_URL = os.environ.get("FLOWTRAIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("FLOWTRAIL_REQUIRE_POSTGRES") == "1"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pg_url_for(dbname: str) -> str:
    """``FLOWTRAIL_TEST_POSTGRES_URL`` pointed at another database on the same server."""
    parts = urlsplit(PG_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{dbname}", parts.query, ""))


def run_async(make: Callable[[], Any]) -> Any:
    """Run a coroutine from sync fixture code, in its own thread and event loop, so it
    cannot disturb the loop pytest-asyncio runs the tests on."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def migrate_url(url: str) -> list[str]:
    async def go() -> list[str]:
        async with open_store(url) as store:
            return await store.migrate()

    result: list[str] = run_async(go)
    return result


def _pg_unreachable(reason: object) -> NoReturn:
    message = f"PostgreSQL not reachable at {redact_url(PG_URL)}: {reason}"
    if REQUIRE_PG:
        pytest.fail(message)
    pytest.skip(message)


class PgServer:
    """Creates and drops the per-test databases on the test server.

    One ``CREATE DATABASE`` takes 0.1-0.3 s but they run well in parallel, so a few
    databases are always being copied from the template in the background while tests
    run, and drops happen in the background too. ``STRATEGY FILE_COPY`` (PostgreSQL 15+)
    because the default WAL_LOG copy makes the later drop several times slower.
    """

    PREFETCH = 4

    def __init__(self, template: str, server_version: int) -> None:
        self.template = template
        self._strategy = sql.SQL(" STRATEGY FILE_COPY" if server_version >= 150000 else "")
        self._pool = ThreadPoolExecutor(self.PREFETCH + 2, thread_name_prefix="flowtrail-pg")
        self._ready: deque[Future[str]] = deque()
        self._drops: list[Future[None]] = []

    @staticmethod
    def _admin(statement: sql.Composable) -> None:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(statement)

    def create(self, template: str, name: str | None = None) -> str:
        name = name or f"flowtrail_t_{uuid.uuid4().hex}"
        self._admin(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}{}").format(
                sql.Identifier(name), sql.Identifier(template), self._strategy
            )
        )
        return name

    def drop(self, name: str) -> None:
        # FORCE: a test that leaked a connection must not leak the database too.
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def take(self) -> str:
        """A fresh database copied from the migrated template."""
        while len(self._ready) < self.PREFETCH + 1:
            self._ready.append(self._pool.submit(self.create, self.template))
        return self._ready.popleft().result()

    def release(self, name: str) -> None:
        self._drops.append(self._pool.submit(self.drop, name))

    def shutdown(self) -> None:
        for pending in self._ready:
            with suppress(Exception):
                self.release(pending.result())
        for dropping in self._drops:
            with suppress(Exception):
                dropping.result()
        self._pool.shutdown(wait=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    try:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as probe:
            version = probe.info.server_version
    except psycopg.Error as exc:
        _pg_unreachable(exc)
    # A name per session: concurrent sessions never rebuild a template another copies.
    server = PgServer(f"flowtrail_test_template_{uuid.uuid4().hex[:12]}", version)
    try:
        server.create("template0", name=server.template)
        migrate_url(pg_url_for(server.template))
        run_async(lambda: apply_queue_schema(pg_url_for(server.template)))
        yield server
    finally:
        server.shutdown()
        server.drop(server.template)


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"  # tmp_path is absolute, so this is sqlite:////abs/path


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a freshly migrated, empty database, on each backend."""
    if request.param == "sqlite":
        url = _sqlite_url(tmp_path / "flowtrail.db")
        migrate_url(url)
        yield url
        return
    server: PgServer = request.getfixturevalue("pg_server")
    name = server.take()
    try:
        yield pg_url_for(name)
    finally:
        server.release(name)


@pytest.fixture(params=BACKENDS)
def blank_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database with no migrations applied, on each backend."""
    if request.param == "sqlite":
        yield _sqlite_url(tmp_path / "blank" / "flowtrail.db")
        return
    server: PgServer = request.getfixturevalue("pg_server")
    name = server.create("template0")
    try:
        yield pg_url_for(name)
    finally:
        server.release(name)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    """An open store on a migrated, empty database; closed after the test."""
    async with open_store(store_url) as opened:
        yield opened
