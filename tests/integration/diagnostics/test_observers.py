"""Observers that raise or never return change nothing on the row and delay nothing."""

from __future__ import annotations

import asyncio
import threading
import time

from flowtrail.engine.events import Event, RunFinished
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import FinalizationPath, RunStatus

CODE = """
def echo(x):
    return x
"""

DEFINITION = {
    "name": "observed",
    "blocks": {
        "start": {"type": "start"},
        "a": {"type": "function", "call": "FNS:echo", "with": {"x": 1}},
        "b": {"type": "function", "call": "FNS:echo", "with": {"x": "{{ a.result + 1 }}"}},
    },
    "connections": ["start -> a", "a -> b"],
}


async def test_misbehaving_observers_change_nothing(db, flow) -> None:
    fl = flow(DEFINITION, CODE)
    never = asyncio.Event()
    blocked = threading.Event()
    seen: list[Event] = []

    def raising(event: Event) -> None:
        raise RuntimeError("observer bug")

    async def raising_async(event: Event) -> None:
        raise RuntimeError("async observer bug")

    async def hanging_async(event: Event) -> None:
        await never.wait()

    def hanging_sync(event: Event) -> None:
        blocked.wait()

    def watching(event: Event) -> None:
        seen.append(event)

    grace = 0.2
    runner = Runner(Settings(observer_grace_seconds=grace), db)
    try:
        t0 = time.monotonic()
        report = await runner.run(
            fl.workflow,
            observers=[raising, raising_async, hanging_async, hanging_sync, watching],
        )
        elapsed = time.monotonic() - t0
        # finalized before run() returned, whatever the observers are doing
        rec = await db.get_run(report.run_id)
    finally:
        blocked.set()

    assert report.status is RunStatus.COMPLETED and report.output == {"result": 2}
    assert rec.status is RunStatus.COMPLETED
    assert rec.finalization_path is FinalizationPath.COMPLETED
    assert rec.ended_at is not None
    assert rec.last_completed_block is not None and rec.last_completed_block.block_id == "b"
    assert rec.marker_write_failures == 0
    assert elapsed < 2.0, f"run() took {elapsed:.2f}s with a {grace}s observer grace"
    # the well-behaved observer saw the whole run, the end included
    assert any(isinstance(e, RunFinished) and e.status == "completed" for e in seen)


async def test_a_hanging_observer_does_not_delay_finalization(db, flow) -> None:
    """The row is terminal before the observers' grace period is over."""
    fl = flow(DEFINITION, CODE)
    blocked = threading.Event()

    def hanging_sync(event: Event) -> None:
        blocked.wait()

    runner = Runner(Settings(observer_grace_seconds=0.5), db)
    try:
        handle = await runner.start(fl.workflow, observers=[hanging_sync])
        t0 = time.monotonic()
        while (await db.get_run(handle.run_id)).status is RunStatus.RUNNING:
            assert time.monotonic() - t0 < 2, "the run was never finalized"
            await asyncio.sleep(0.01)
        # terminal on the row while the runner still gives the observer its grace
        assert not handle.task.done()
        report = await handle.result()
    finally:
        blocked.set()
    assert report.status is RunStatus.COMPLETED
