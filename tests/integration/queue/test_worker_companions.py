"""A worker in this process: loops beside it (the sweeper's hook) live exactly as long
as it does, and a stop asked for before it started is honoured."""

from __future__ import annotations

import asyncio

import pytest

from flowtrail.queue.worker import QueueWorker, WorkerOptions
from flowtrail.settings import Settings
from flowtrail.store import SqlStore

pytestmark = pytest.mark.parametrize(
    "store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


async def test_companions_run_beside_the_worker_and_stop_with_it(store: SqlStore) -> None:
    ticks: list[str] = []
    started = asyncio.Event()

    async def companion() -> None:
        started.set()
        try:
            while True:
                ticks.append("tick")
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            ticks.append("stopped")
            raise

    worker = QueueWorker(store, Settings(database_url=store.url), WorkerOptions(), [companion])
    running = asyncio.ensure_future(worker.run())
    await asyncio.wait_for(started.wait(), 30)
    worker.stop()
    await asyncio.wait_for(running, 30)
    assert ticks[0] == "tick" and ticks[-1] == "stopped"


async def test_a_stop_before_the_start_stops_it_at_once(store: SqlStore) -> None:
    worker = QueueWorker(store, Settings(database_url=store.url), WorkerOptions())
    worker.stop()
    await asyncio.wait_for(worker.run(), 30)
