"""Cancellation through the Python API, and observers that misbehave."""

from __future__ import annotations

import asyncio
import threading
import time

from flowtrail.engine.events import (
    BlockCompleted,
    BlockStarted,
    Event,
    RunFinished,
    RunStarted,
)
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from tests.integration.engine.engine_support import engine_blocks, eventually, load


async def test_cancel_while_a_block_sleeps_ends_the_run_cancelled_promptly() -> None:
    events: list[Event] = []
    runner = Runner(Settings(observer_grace_seconds=0.2), store=None)
    hanging = engine_blocks.SIGNALS["hang"] = asyncio.Event()
    handle = await runner.start(load("cancel.yaml"), observers=[events.append])
    await asyncio.wait_for(hanging.wait(), 2.0)

    asked = time.monotonic()
    handle.cancel()
    report = await asyncio.wait_for(handle.result(), 2.0)

    assert time.monotonic() - asked < 1.0  # the 30 s sleep was not waited for
    assert report.status is RunStatus.CANCELLED
    assert report.run_id == handle.run_id
    assert report.error is None
    await asyncio.sleep(0.02)
    # The in-flight block was abandoned: its sleep was cancelled and it never completed.
    assert engine_blocks.CANCELLED == ["hang"]
    assert engine_blocks.FINISHED == []
    completed = [e.block_id for e in events if isinstance(e, BlockCompleted)]
    started = [e.block_id for e in events if isinstance(e, BlockStarted)]
    assert completed == ["start", "first"]
    assert started == ["start", "first", "hang"]
    finished = [e for e in events if isinstance(e, RunFinished)]
    assert [f.status for f in finished] == ["cancelled"]


async def test_cancel_right_after_start_is_not_lost() -> None:
    runner = Runner(Settings(observer_grace_seconds=0.2), store=None)
    handle = await runner.start(load("sequence.yaml"), {"x": 1})
    handle.cancel()
    report = await asyncio.wait_for(handle.result(), 2.0)

    assert report.status is RunStatus.CANCELLED
    assert engine_blocks.CALLS == []


async def test_misbehaving_observers_change_nothing_and_run_returns() -> None:
    workflow = load("sequence.yaml")
    runner = Runner(Settings(observer_grace_seconds=0.2), store=None)
    baseline = await runner.run(workflow, {"x": 1})
    assert baseline.status is RunStatus.COMPLETED

    good: list[Event] = []
    raised: list[Event] = []
    hung_async: list[Event] = []
    hung_sync: list[Event] = []
    gate = threading.Event()  # never set during the run; set at the end to free the thread

    def raising(event: Event) -> None:
        raised.append(event)
        raise RuntimeError("observer exploded")

    async def never_returns(event: Event) -> None:
        hung_async.append(event)
        await asyncio.Event().wait()

    def blocks_forever(event: Event) -> None:
        hung_sync.append(event)
        gate.wait()

    try:
        began = time.monotonic()
        report = await asyncio.wait_for(
            runner.run(
                workflow, {"x": 1}, observers=[raising, never_returns, blocks_forever, good.append]
            ),
            5.0,
        )
        elapsed = time.monotonic() - began
    finally:
        gate.set()

    assert report.status is baseline.status
    assert report.output == baseline.output == {"result": "total=111"}
    assert report.error is None and report.error_block_id is None
    assert elapsed < 1.5  # grace is 0.2 s; hung observers are abandoned, not awaited
    # The well-behaved observer saw the whole run...
    assert isinstance(good[0], RunStarted) and isinstance(good[-1], RunFinished)
    assert [e.block_id for e in good if isinstance(e, BlockCompleted)] == [
        "start",
        "first",
        "second",
        "third",
    ]
    # ...the raising one kept receiving after every failure...
    assert raised == good
    # ...and each hung one got its first event and then stalled only itself.
    assert hung_async == good[:1]
    assert hung_sync == good[:1]


async def test_observer_mutating_an_event_cannot_change_the_output() -> None:
    async def meddle(event: Event) -> None:
        if isinstance(event, BlockCompleted) and isinstance(event.output, dict):
            event.output["result"] = "tampered"

    runner = Runner(Settings(observer_grace_seconds=0.2), store=None)
    report = await runner.run(load("sequence.yaml"), {"x": 1}, observers=[meddle])

    assert report.status is RunStatus.COMPLETED
    assert report.output == {"result": "total=111"}


async def test_cancel_during_a_retry_wait_is_never_retried() -> None:
    runner = Runner(Settings(observer_grace_seconds=0.2), store=None)
    handle = await runner.start(load("retry_cancel.yaml"), run_id="retry-cancel")
    # The first try fails at once; then the block waits 30 s before the next one.
    await eventually(lambda: engine_blocks.ATTEMPTS.get("retry-cancel") == 1)
    await asyncio.sleep(0.05)

    handle.cancel()
    report = await asyncio.wait_for(handle.result(), 1.0)

    assert report.status is RunStatus.CANCELLED
    await asyncio.sleep(0.05)
    assert engine_blocks.ATTEMPTS == {"retry-cancel": 1}


async def test_cancel_while_a_sync_function_blocks_its_thread() -> None:
    runner = Runner(Settings(observer_grace_seconds=0.2), store=None)
    handle = await runner.start(load("sync_stuck.yaml"))
    await eventually(lambda: ("wait_for_gate", "stuck") in engine_blocks.CALLS)

    asked = time.monotonic()
    handle.cancel()
    report = await asyncio.wait_for(handle.result(), 1.0)

    # The thread cannot be interrupted, but the run does not wait for it.
    assert report.status is RunStatus.CANCELLED
    assert time.monotonic() - asked < 0.5
    engine_blocks.GATES["stuck"].set()
