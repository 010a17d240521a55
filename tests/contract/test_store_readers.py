"""``ReaderPool``: readers that answer while the writer holds a write transaction.

SQLite: a real file in WAL mode; the writer is another connection holding ``BEGIN
EXCLUSIVE`` with an uncommitted change (in the rollback-journal mode an exclusive lock
shuts readers out: they would wait out the busy timeout and fail ``database is locked``).
PostgreSQL: the writer holds an open transaction that changed the row. Both: the reader
answers at once with the last committed state, and the writer's own store could not have
answered (its one connection is taken by the transaction)."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from tests.contract.conftest import Kit

from flowtrail.errors import DatabaseNotFoundError, StoreError
from flowtrail.status import RunStatus
from flowtrail.store import RunQuery, SqlStore
from flowtrail.store.readers import ReaderPool
from flowtrail.store.sqlite import sqlite_path

# Far below the SQLite busy timeout (5 s): a reader that queued behind the writer would
# miss it. Not a performance assertion: an answer either comes without waiting or never.
ANSWER_WITHIN = 3.0


async def test_a_reader_answers_while_the_writer_holds_a_write_transaction(
    store: SqlStore, store_url: str, kit: Kit
) -> None:
    run_id = await kit.run(RunStatus.RUNNING, workflow="before")
    async with ReaderPool(store_url, size=3) as pool:
        if store.backend == "sqlite":
            writer = sqlite3.connect(sqlite_path(store_url), isolation_level=None)
            writer.execute("BEGIN EXCLUSIVE")
            writer.execute(
                "UPDATE workflow_execution_logs SET workflow_name = 'during' WHERE id = ?",
                (run_id,),
            )
            try:
                await _reads_committed_state(pool, run_id)
            finally:
                writer.execute("ROLLBACK")
                writer.close()
        else:
            async with store._transaction():
                await store._fetch(
                    "UPDATE workflow_execution_logs SET workflow_name = 'during' WHERE id = %(id)s",
                    {"id": run_id},
                )
                await _reads_committed_state(pool, run_id)
                # the writer's own store is busy: a read through it waits for the commit
                blocked = asyncio.ensure_future(store.get_run(run_id))
                await asyncio.sleep(0.2)
                assert not blocked.done()
            assert (await blocked).workflow_name == "during"


async def _reads_committed_state(pool: ReaderPool, run_id: str) -> None:
    async def read() -> tuple[str, list[str]]:
        async with pool.reader() as reader:
            record = await reader.get_run(run_id)
            page = await reader.list_summaries(RunQuery())
            return record.workflow_name, [r.workflow_name for r in page.rows]

    name, listed = await asyncio.wait_for(read(), ANSWER_WITHIN)
    assert (name, listed) == ("before", ["before"])


async def test_readers_are_distinct_and_lent_one_caller_at_a_time(
    store: SqlStore, store_url: str, kit: Kit
) -> None:
    await kit.run()
    async with ReaderPool(store_url, size=2) as pool:
        async with pool.reader() as a, pool.reader() as b:
            assert a is not b and a is not store
            third = asyncio.ensure_future(_first_run(pool))
            await asyncio.sleep(0.1)
            assert not third.done()  # both readers are lent: the third caller waits
        assert await asyncio.wait_for(third, ANSWER_WITHIN) is not None
        # many concurrent reads through two readers all answer
        results = await asyncio.gather(*(_first_run(pool) for _ in range(10)))
        assert len(set(results)) == 1


async def _first_run(pool: ReaderPool) -> str:
    async with pool.reader() as reader:
        return (await reader.list_summaries(RunQuery(limit=1))).rows[0].id


async def test_pool_refusals(tmp_path) -> None:
    with pytest.raises(StoreError, match="at least one reader"):
        ReaderPool("sqlite:///x.db", size=0)
    with pytest.raises(DatabaseNotFoundError):
        await ReaderPool(f"sqlite:///{tmp_path}/missing.db").open()
    with pytest.raises(StoreError, match="database file"):
        await ReaderPool("sqlite:///:memory:").open()
    pool = ReaderPool(f"sqlite:///{tmp_path}/missing.db")
    with pytest.raises(StoreError, match="not open"):
        async with pool.reader():
            pass
