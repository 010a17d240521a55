"""Cancelled wins, and a durable cancel request stops a running engine in bounded time."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from flowtrail.errors import RunStateError
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store import Finalization
from tests.integration.diagnostics.support import one_span, trace_of, wait_started

CODE = """
import asyncio
import threading

GATE = None            # an asyncio.Event, set by the test
RELEASE = threading.Event()

async def held(then):
    await GATE.wait()
    if then == "fail":
        raise RuntimeError("failed after the cancel")
    return {"then": then}

async def hang():
    await asyncio.sleep(30)

def hang_sync():
    RELEASE.wait(20)
    return "released"

def echo(x):
    return x
"""


def held_flow(then: str) -> dict:
    blocks: dict = {
        "start": {"type": "start"},
        "hold": {"type": "function", "call": "FNS:held", "with": {"then": then}},
        "tail": {"type": "function", "call": "FNS:echo", "with": {"x": "{{ hold.result }}"}},
    }
    connections = ["start -> hold", "hold -> tail"]
    if then == "last":  # nothing starts after `hold`: the engine finishes its own way
        del blocks["tail"]
        connections = ["start -> hold"]
    if then == "pause":
        blocks["ask"] = {"type": "wait", "for": "input"}
        connections = ["start -> hold", "hold -> ask", "ask -> tail"]
    return {"name": f"held-{then}", "blocks": blocks, "connections": connections}


def api_cancel() -> Finalization:
    return Finalization(
        status=RunStatus.CANCELLED,
        path=FinalizationPath.CANCELLED,
        finalized_by=FinalizedBy.API,
        ended_at=datetime.now(UTC),
        duration_ms=5,
        output={"cancelled": True},
    )


@pytest.mark.parametrize(
    ("then", "late_status", "late_path"),
    [
        # the engine learns at its next marker write that the run was ended elsewhere and
        # stops, so a run that had more blocks to start ends its own way as cancelled
        ("complete", "cancelled", "cancelled"),
        ("last", "completed", "completed"),
        ("fail", "failed", "force_failed"),
        ("pause", "cancelled", "cancelled"),
    ],
)
async def test_cancelled_wins_over_a_late_result(
    db, db2, flow, then, late_status, late_path
) -> None:
    fl = flow(held_flow(then), CODE)
    fl.module.GATE = asyncio.Event()
    runner = Runner(Settings(), db)
    handle = await runner.start(fl.workflow)
    await wait_started(db2, handle.run_id, "hold")

    outside = await db2.finalize(handle.run_id, api_cancel())
    assert outside.persisted and outside.status is RunStatus.CANCELLED
    fl.module.GATE.set()
    report = await asyncio.wait_for(handle.result(), 10)

    assert report.status is RunStatus.CANCELLED
    assert report.persisted is not None and not report.persisted.persisted
    rec = await db.get_run(handle.run_id)
    assert rec.status is RunStatus.CANCELLED
    assert rec.finalization_path is FinalizationPath.CANCELLED
    assert rec.finalized_by is FinalizedBy.API
    assert rec.output == {"cancelled": True}
    assert rec.error_message is None
    assert rec.pause_state is None
    late = [n for n in rec.notes if n.get("kind") == "late_result"]
    assert len(late) == 1
    assert (late[0]["status"], late[0]["path"], late[0]["finalized_by"]) == (
        late_status,
        late_path,
        "engine",
    )
    if then in ("complete", "pause"):
        assert late[0]["output"] == {"cancelled": True}
    if then == "last":
        assert late[0]["output"] == {"result": {"then": "last"}}
    if then == "fail":
        assert "failed after the cancel" in late[0]["error"]
    if then == "pause":
        with pytest.raises(RunStateError):
            await runner.resume(fl.workflow, handle.run_id, {})


@pytest.mark.parametrize("block", ["hang", "hang_sync"])
async def test_durable_cancel_request_stops_the_engine_in_bounded_time(
    db, db2, flow, block
) -> None:
    fl = flow(
        {
            "name": "hung",
            "blocks": {
                "start": {"type": "start"},
                "h": {"type": "function", "call": f"FNS:{block}"},
                "tail": {"type": "function", "call": "FNS:echo", "with": {"x": 1}},
            },
            "connections": ["start -> h", "h -> tail"],
        },
        CODE,
    )
    try:
        handle = await Runner(Settings(cancel_poll_seconds=0.2), db).start(fl.workflow)
        await wait_started(db2, handle.run_id, "h")
        # nobody calls handle.cancel(): the request exists only in the database
        t0 = time.monotonic()
        outcome = await db2.request_cancel(handle.run_id, "api")
        assert outcome.requested and not outcome.finalized
        assert outcome.status is RunStatus.RUNNING
        report = await asyncio.wait_for(handle.result(), 5)
        elapsed = time.monotonic() - t0
    finally:
        fl.module.RELEASE.set()

    assert elapsed < 1.5, f"the engine took {elapsed:.2f}s to see the cancel request"
    assert report.status is RunStatus.CANCELLED
    rec = await db.get_run(handle.run_id)
    assert rec.status is RunStatus.CANCELLED
    assert rec.finalization_path is FinalizationPath.CANCELLED
    assert rec.finalized_by is FinalizedBy.ENGINE
    assert rec.cancel_requested_at is not None
    assert rec.cancel_requested_by == "api"
    assert rec.ended_at is not None and rec.duration_ms is not None and rec.duration_ms >= 1
    assert rec.last_started_block is not None and rec.last_started_block.block_id == "h"
    assert one_span(trace_of(rec), block_id="h")["status"] == "cancelled"
    assert not [s for s in trace_of(rec)["children"] if s.get("block_id") == "tail"]
    assert rec.notes == []


async def test_cancel_request_of_a_finished_run_is_a_no_op(db, db2, flow) -> None:
    fl = flow(
        {
            "name": "quick",
            "blocks": {
                "start": {"type": "start"},
                "e": {"type": "function", "call": "FNS:echo", "with": {"x": 1}},
            },
            "connections": ["start -> e"],
        },
        CODE,
    )
    report = await Runner(Settings(), db).run(fl.workflow)
    before = await db.get_run(report.run_id)
    outcome = await db2.request_cancel(report.run_id, "api")
    assert not outcome.requested and not outcome.finalized
    assert outcome.status is RunStatus.COMPLETED
    after = await db.get_run(report.run_id)
    assert after.status is RunStatus.COMPLETED and after.cancel_requested_at is None
    assert after.updated_at == before.updated_at


async def test_in_process_cancel_ends_the_run_cancelled_by_the_engine(db, db2, flow) -> None:
    fl = flow(
        {
            "name": "hung",
            "blocks": {"start": {"type": "start"}, "h": {"type": "function", "call": "FNS:hang"}},
            "connections": ["start -> h"],
        },
        CODE,
    )
    handle = await Runner(Settings(), db).start(fl.workflow)
    await wait_started(db2, handle.run_id, "h")
    handle.cancel()
    report = await asyncio.wait_for(handle.result(), 5)
    assert report.status is RunStatus.CANCELLED
    rec = await db.get_run(handle.run_id)
    assert (rec.status, rec.finalization_path) == (RunStatus.CANCELLED, FinalizationPath.CANCELLED)
    assert rec.finalized_by is FinalizedBy.ENGINE
    assert rec.last_started_block is not None and rec.last_started_block.block_id == "h"
    # the request was recorded durably before the engine was told
    assert rec.cancel_requested_at is not None and rec.cancel_requested_by == "api"
