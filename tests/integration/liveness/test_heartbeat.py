"""The lease heartbeat is a thread: a block that hogs the event loop keeps its lease, the
unresponsive loop is recorded as evidence, and an engine whose lease was taken away
stops and changes nothing."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from flowtrail.store import SqlStore
from flowtrail.store.blocking import BlockingStore
from flowtrail.store.common import parse_ts

CODE = """
import asyncio
import time

async def hog(seconds):
    time.sleep(seconds)  # blocks the event loop: CPU-bound async code
    return "done"

async def slow():
    await asyncio.sleep(30)
"""


def one_block(call: str, **with_: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "function", "call": call}
    if with_:
        block["with"] = with_
    return {
        "name": "lease",
        "blocks": {"start": {"type": "start"}, "b": block},
        "connections": ["start -> b"],
    }


class RowWatcher(threading.Thread):
    """Reads the run's row from its own connection every 50 ms, while the loop may be
    blocked: what anyone looking at the database would have seen."""

    def __init__(self, url: str, run_id: str) -> None:
        super().__init__(daemon=True)
        self.db = BlockingStore(url)
        self.run_id = run_id
        self.seen: list[dict[str, Any]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            rows = self.db.fetch("get_run", {"id": self.run_id})
            if rows:
                self.seen.append(rows[0])
        self.db.close()


async def test_a_block_hogging_the_loop_keeps_its_lease(db: SqlStore, flow: Any) -> None:
    lease = 0.6
    f = flow(one_block("FNS:hog", seconds=6 * lease), CODE)
    runner = Runner(Settings(lease_seconds=lease), db)
    handle = await runner.start(f.workflow)
    watcher = RowWatcher(db.url, handle.run_id)
    watcher.start()
    report = await handle.result()
    watcher.done.set()
    watcher.join()
    assert report.status is RunStatus.COMPLETED and report.persisted is not None

    running = [r for r in watcher.seen if r["status"] == "running"]
    beats = {r["heartbeat_at"] for r in running}
    assert len(beats) >= 4, "the lease was renewed while the event loop was blocked"
    for row in running:  # never seen expired while the block held the loop
        assert parse_ts(row["lease_expires_at"]) > parse_ts(row["heartbeat_at"])
    lags = [r["loop_lag_ms"] for r in running if r["loop_lag_ms"] is not None]
    assert lags and max(lags) >= 1000, "the blocked event loop was recorded"
    assert any(r["loop_blocked_since"] is not None for r in running)
    assert report.status is RunStatus.COMPLETED


async def test_an_engine_whose_lease_was_taken_stops_and_changes_nothing(
    db: SqlStore, db2: SqlStore, flow: Any
) -> None:
    f = flow(one_block("FNS:slow"), CODE)
    runner = Runner(Settings(lease_seconds=0.6), db)
    handle = await runner.start(f.workflow)
    for _ in range(500):  # until the block is running
        if (await db2.get_run(handle.run_id)).last_started_block is not None:
            break
        await asyncio.sleep(0.02)
    # Somebody else takes the run over (what a reclaim does): the epoch moves on.
    param = "%(id)s" if db2.backend == "postgres" else ":id"
    await db2._fetch(
        f"UPDATE workflow_execution_logs SET lease_epoch = lease_epoch + 1 WHERE id = {param}",
        {"id": handle.run_id},
    )
    began = time.monotonic()
    report = await asyncio.wait_for(handle.result(), 20)
    assert time.monotonic() - began < 20  # it stopped on its own, long before `slow` ends
    assert handle.fenced
    assert report.persisted is not None and not report.persisted.persisted
    row = await db2.get_run(handle.run_id)
    assert row.status is RunStatus.RUNNING  # the new holder's, untouched
    assert row.lease_epoch == 2
    assert row.notes and row.notes[-1]["kind"] == "late_result"
    assert row.notes[-1]["epoch"] == 1
