"""Progress markers: drained before the terminal write, monotonic with the same-millisecond
rule, never failing the run, and covering empty containers."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from flowtrail.engine.events import BlockStarted
from flowtrail.engine.executor import RunResult
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store import CompletedMarker, Finalization, ProgressWrite, StartedMarker
from tests.integration.diagnostics.support import (
    add_reject_trigger,
    bare_run,
    count_spans,
    one_span,
    recording_store,
    spans_of,
    trace_of,
    wait_for,
)

CODE = """
import asyncio

async def step(x):
    await asyncio.sleep(0.001)
    return x

def echo(x):
    return x
"""


def chain(*ids: str) -> dict:
    blocks: dict = {"start": {"type": "start"}}
    connections = []
    previous = "start"
    for block_id in ids:
        blocks[block_id] = {"type": "function", "call": "FNS:step", "with": {"x": block_id}}
        connections.append(f"{previous} -> {block_id}")
        previous = block_id
    return {"name": "chain", "blocks": blocks, "connections": connections}


def _index(events: list, kind: str, pred=lambda _: True) -> list[int]:
    return [i for i, (k, v) in enumerate(events) if k == kind and pred(v)]


def _started(block_id: str):
    return lambda w: w.started is not None and w.started.block_id == block_id


async def _until(store, kind: str, pred) -> None:
    async def seen() -> bool:
        return bool(_index(store.events, kind, pred))

    await wait_for(seen, every=0.001)


# -- draining -----------------------------------------------------------------------------


async def test_completion_waits_for_every_marker_write(store_url, flow) -> None:
    fl = flow(chain("a", "b", "c"), CODE)
    store = recording_store(store_url, delay=0.05)
    await store.open()
    try:
        report = await Runner(Settings(), store).run(fl.workflow)
        rec = await store.get_run(report.run_id)
    finally:
        await store.close()

    assert rec.status is RunStatus.COMPLETED
    events = store.events
    (fin_begin,) = _index(events, "finalize-begin")
    progress_ends = _index(events, "progress-end")
    assert progress_ends and max(progress_ends) < fin_begin
    assert len(_index(events, "progress-begin")) == len(progress_ends)
    assert rec.last_started_block is not None and rec.last_started_block.block_id == "c"
    assert rec.last_completed_block is not None and rec.last_completed_block.block_id == "c"
    # at most one round trip per block of a sequential chain (start, a, b, c + the drain)
    assert len(progress_ends) <= 5


async def test_completion_waits_for_a_start_write_still_in_flight(store_url, flow) -> None:
    """The run is cancelled while block b's start marker is being written: the terminal
    write waits for it, and the row names b."""
    fl = flow(chain("a", "b"), CODE)
    store = recording_store(store_url, delay=0.3)
    await store.open()
    try:
        handle = await Runner(Settings(cancel_poll_seconds=60), store).start(fl.workflow)
        await _until(store, "progress-begin", _started("b"))
        handle.cancel()
        report = await asyncio.wait_for(handle.result(), 5)
        rec = await store.get_run(handle.run_id)
    finally:
        await store.close()

    assert report.status is RunStatus.CANCELLED
    assert (rec.status, rec.finalization_path) == (RunStatus.CANCELLED, FinalizationPath.CANCELLED)
    events = store.events
    (b_end,) = _index(events, "progress-end", _started("b"))
    (fin_begin,) = _index(events, "finalize-begin")
    assert b_end < fin_begin
    assert max(_index(events, "progress-end")) < fin_begin
    assert rec.last_started_block is not None and rec.last_started_block.block_id == "b"


async def test_drain_keeps_looping_when_writes_arrive_while_draining(store_url) -> None:
    store = recording_store(store_url, delay=0.4)
    await store.open()
    try:
        run = await bare_run(store)
        recorder = run.recorder
        t0 = time.time()
        first = asyncio.ensure_future(
            recorder.block_started(BlockStarted(run.run_id, "one", "one", "function", (), t0))
        )
        await _until(store, "progress-begin", _started("one"))
        drain = asyncio.ensure_future(recorder.drain())
        for _ in range(5):
            await asyncio.sleep(0)  # the drain is now waiting for "one"
        second = asyncio.ensure_future(
            recorder.block_started(BlockStarted(run.run_id, "two", "two", "function", (), t0 + 1))
        )
        await asyncio.sleep(0)
        assert not _index(store.events, "progress-end"), "too slow to test: 'one' is written"
        await drain
        store.events.append(("drain-done", None))
        await asyncio.gather(first, second)
        rec = await store.get_run(run.run_id)
    finally:
        await store.close()

    events = store.events
    (done,) = _index(events, "drain-done")
    (two_end,) = _index(events, "progress-end", _started("two"))
    assert two_end < done
    assert rec.last_started_block is not None and rec.last_started_block.block_id == "two"


# -- monotonic, same millisecond -----------------------------------------------------------


def _s(block: str, at: datetime) -> StartedMarker:
    return StartedMarker(block, block, "function", at)


def _c(block: str, at: datetime) -> CompletedMarker:
    return CompletedMarker(block, block, "function", at, True)


async def test_same_timestamp_replaces_older_never_does(db) -> None:
    run = await bare_run(db)
    same = datetime.now(UTC).replace(microsecond=500_000)
    await db.write_progress(
        run.run_id, ProgressWrite(started=_s("x", same), completed=_c("x", same))
    )
    await db.write_progress(
        run.run_id, ProgressWrite(started=_s("y", same), completed=_c("y", same))
    )
    rec = await db.get_run(run.run_id)
    assert rec.last_started_block == _s("y", same)
    assert rec.last_completed_block == _c("y", same)

    older = same - timedelta(microseconds=1)
    await db.write_progress(
        run.run_id, ProgressWrite(started=_s("old", older), completed=_c("old", older))
    )
    rec = await db.get_run(run.run_id)
    assert rec.last_started_block == _s("y", same)
    assert rec.last_completed_block == _c("y", same)

    # the terminal write folds markers by the same rule
    fin = Finalization(
        status=RunStatus.COMPLETED,
        path=FinalizationPath.COMPLETED,
        finalized_by=FinalizedBy.ENGINE,
        ended_at=same + timedelta(seconds=1),
        duration_ms=1000,
        started=_s("stale", older),
        completed=_c("z", same),
    )
    assert (await db.finalize(run.run_id, fin)).persisted
    rec = await db.get_run(run.run_id)
    assert rec.last_started_block == _s("y", same)
    assert rec.last_completed_block == _c("z", same)


async def test_same_timestamp_through_the_recorder(db) -> None:
    run = await bare_run(db)
    at = time.time()
    for block in ("first", "second"):
        await run.recorder.block_started(BlockStarted(run.run_id, block, block, "function", (), at))
    await run.recorder.block_started(
        BlockStarted(run.run_id, "earlier", "earlier", "function", (), at - 0.5)
    )
    rec = await db.get_run(run.run_id)
    assert rec.last_started_block is not None and rec.last_started_block.block_id == "second"
    outcome = await run.finalizer.finalize(RunResult(RunStatus.COMPLETED))
    assert outcome is not None
    rec = await db.get_run(run.run_id)
    assert rec.last_started_block is not None and rec.last_started_block.block_id == "second"


# -- a failed marker write never fails the run ---------------------------------------------


async def test_failed_marker_write_is_counted_and_superseded(db, flow, store_url) -> None:
    fl = flow(chain("before", "flaky", "after"), CODE)
    await add_reject_trigger(store_url, "ft_flaky", "NEW.last_started_block_id = 'flaky'")
    report = await Runner(Settings(), db).run(fl.workflow)

    assert report.status is RunStatus.COMPLETED
    assert report.output == {"result": "after"}
    rec = await db.get_run(report.run_id)
    assert (rec.status, rec.finalization_path) == (RunStatus.COMPLETED, FinalizationPath.COMPLETED)
    assert rec.marker_write_failures >= 1
    assert rec.last_started_block is not None and rec.last_started_block.block_id == "after"
    assert rec.last_completed_block is not None and rec.last_completed_block.block_id == "after"
    assert one_span(trace_of(rec), block_id="flaky")["status"] == "success"
    assert rec.trace_span_count == count_spans(trace_of(rec))


# -- empty containers -----------------------------------------------------------------------

BODY = {"inner": {"type": "function", "call": "FNS:echo", "with": {"x": 1}}}


@pytest.mark.parametrize(
    "container",
    [
        {"type": "loop", "count": 0},
        {"type": "loop", "for_each": "{{ [] }}"},
        {"type": "loop", "while": "loop.index < 0"},
        {"type": "parallel", "count": 0},
        {"type": "parallel", "collection": "{{ [] }}"},
    ],
    ids=["loop-count-0", "loop-for_each-empty", "loop-while-false", "par-count-0", "par-empty"],
)
async def test_empty_container_has_a_span_and_markers(store_url, flow, container) -> None:
    fl = flow(
        {
            "name": "empty",
            "blocks": {
                "start": {"type": "start"},
                "a": {"type": "function", "call": "FNS:step", "with": {"x": "a"}},
                "empty": {**container, "blocks": BODY},
            },
            "connections": ["start -> a", "a -> empty"],
        },
        CODE,
    )
    store = recording_store(store_url)
    await store.open()
    try:
        report = await Runner(Settings(), store).run(fl.workflow)
        rec = await store.get_run(report.run_id)
    finally:
        await store.close()

    assert report.status is RunStatus.COMPLETED
    assert report.output == {"results": []}
    assert rec.last_started_block is not None
    assert (rec.last_started_block.block_id, rec.last_started_block.block_type) == (
        "empty",
        container["type"],
    )
    assert rec.last_completed_block is not None
    assert rec.last_completed_block.block_id == "empty" and rec.last_completed_block.success
    trace = trace_of(rec)
    span = one_span(trace, block_id="empty")
    assert span["type"] == container["type"]
    assert span["status"] == "success" and span["iterations"] == 0 and span["children"] == []
    assert rec.trace_span_count == count_spans(trace) == 4
    # the container's completion marker reached the row with the terminal write itself
    # (it folds in the newest markers), and no progress write was still in flight then
    events = store.events
    (fin_begin,) = _index(events, "finalize-begin")
    fin = events[fin_begin][1]
    assert fin.completed is not None and fin.completed.block_id == "empty"
    begun = len(_index(events[:fin_begin], "progress-begin"))
    assert begun == len(_index(events[:fin_begin], "progress-end"))


async def test_every_marker_write_refused_still_completes_with_markers(db, flow, store_url) -> None:
    """The database refuses every marker write of the running row; the terminal write
    still folds in the latest markers and counts the failures."""
    fl = flow(chain("a", "b"), CODE)
    await add_reject_trigger(
        store_url,
        "ft_no_markers",
        "NEW.status = 'running' AND NEW.last_started_block_id IS NOT NULL",
    )
    report = await Runner(Settings(), db).run(fl.workflow)
    assert report.status is RunStatus.COMPLETED
    rec = await db.get_run(report.run_id)
    assert (rec.status, rec.finalization_path) == (RunStatus.COMPLETED, FinalizationPath.COMPLETED)
    assert rec.marker_write_failures >= 2  # a and b (the start block has no write of its own)
    assert rec.last_started_block is not None and rec.last_started_block.block_id == "b"
    assert rec.last_completed_block is not None and rec.last_completed_block.block_id == "b"


# -- the start marker is durable before the block's own code runs ----------------------------

PEEK = """
import sqlite3

import psycopg

def peek(url, run_id):
    query = "SELECT last_started_block_id FROM workflow_execution_logs WHERE id = "
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(url[len("sqlite:///"):])
        try:
            return conn.execute(query + "?", (run_id,)).fetchone()[0]
        finally:
            conn.close()
    with psycopg.connect(url) as conn:
        return conn.execute(query + "%s", (run_id,)).fetchone()[0]
"""


async def test_start_marker_is_durable_before_the_block_runs(db, flow, store_url) -> None:
    peek = {
        "type": "function",
        "call": "FNS:peek",
        "with": {"url": store_url, "run_id": "{{ run.id }}"},
    }
    fl = flow(
        {
            "name": "peek",
            "blocks": {
                "start": {"type": "start"},
                "first": peek,
                "second": peek,
                "par": {"type": "parallel", "count": 3, "blocks": {"inside": peek}},
            },
            "connections": ["start -> first", "first -> second", "second -> par"],
        },
        PEEK,
    )
    report = await Runner(Settings(), db).run(fl.workflow)
    assert report.status is RunStatus.COMPLETED
    rec = await db.get_run(report.run_id)
    trace = trace_of(rec)
    # what each block saw in the database, from another connection, as its code began
    assert one_span(trace, block_id="first")["output"] == {"result": "first"}
    assert one_span(trace, block_id="second")["output"] == {"result": "second"}
    assert [s["output"] for s in spans_of(trace, block_id="inside")] == [{"result": "inside"}] * 3


async def test_a_wide_parallel_shares_marker_writes(store_url, flow) -> None:
    fl = flow(
        {
            "name": "wide",
            "blocks": {
                "start": {"type": "start"},
                "par": {
                    "type": "parallel",
                    "count": 50,
                    "blocks": {"leaf": {"type": "function", "call": "FNS:step", "with": {"x": 1}}},
                },
            },
            "connections": ["start -> par"],
        },
        CODE,
    )
    store = recording_store(store_url)
    await store.open()
    try:
        report = await Runner(Settings(), store).run(fl.workflow)
        rec = await store.get_run(report.run_id)
    finally:
        await store.close()
    assert report.status is RunStatus.COMPLETED
    writes = store.progress_writes()
    assert len(writes) <= 10, f"{len(writes)} marker writes for 50 parallel blocks"
    assert rec.last_completed_block is not None and rec.last_completed_block.block_id == "par"
    assert rec.trace_span_count == count_spans(trace_of(rec)) == 1 + 1 + 1 + 50 + 50
