"""Interleavings found in review: each one once left a run unexplained or wrong."""

from __future__ import annotations

import asyncio
import json

import pytest

from flowtrail.diagnostics.recorder import Recorder
from flowtrail.errors import RunStateError
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import FinalizationPath, RunStatus

CODE = """
import asyncio
import time

def check(i=0):
    time.sleep(0.2)
    return {"ready": i >= 2}

def delay():
    time.sleep(0.05)
    return 1

def secret_set(token):
    return {token}  # not JSON: a set that holds the secret

async def slow():
    await asyncio.sleep(30)
"""

WHILE_WITH_PAUSING_SIBLING = {
    "name": "while-pause",
    "blocks": {
        "start": {"type": "start"},
        "lp": {
            "type": "loop",
            "while": "loop.index == 0 or not check.result.ready",
            "blocks": {
                "check": {
                    "type": "function",
                    "call": "FNS:check",
                    "with": {"i": "{{ loop.index }}"},
                }
            },
        },
        "d": {"type": "function", "call": "FNS:delay"},
        "ask": {"type": "wait", "for": "input"},
    },
    "connections": ["start -> lp", "start -> d", "d -> ask"],
}


async def test_while_loop_paused_between_iterations_resumes_with_its_condition(db, flow) -> None:
    fl = flow(WHILE_WITH_PAUSING_SIBLING, CODE)
    runner = Runner(Settings(), db)
    first = await runner.run(fl.workflow)
    assert first.status is RunStatus.PAUSED
    done = await (await runner.resume(fl.workflow, first.run_id, {"ok": True})).result()
    assert done.status is RunStatus.COMPLETED, done.error
    assert [r["result"]["ready"] for r in done.output["lp"]["results"]] == [False, False, True]


async def test_a_cancel_that_lands_while_pausing_ends_the_run_cancelled(db, db2, flow) -> None:
    fl = flow(
        {
            "name": "pause-cancel",
            "blocks": {
                "start": {"type": "start"},
                "pre": {"type": "function", "call": "FNS:delay"},
                "ask": {"type": "wait", "for": "input"},
            },
            "connections": ["start -> pre", "pre -> ask"],
        },
        CODE,
    )
    original = Recorder.drain

    async def drain_after_a_cancel_request(self: Recorder) -> None:
        await db2.request_cancel(self.run_id, "api")  # arrives after the engine paused
        await original(self)

    Recorder.drain = drain_after_a_cancel_request  # type: ignore[method-assign]
    try:
        report = await Runner(Settings(), db).run(fl.workflow)
    finally:
        Recorder.drain = original  # type: ignore[method-assign]
    record = await db.get_run(report.run_id)
    assert report.status is RunStatus.CANCELLED
    assert (record.status, record.finalization_path) == (
        RunStatus.CANCELLED,
        FinalizationPath.CANCELLED,
    )
    with pytest.raises(RunStateError):
        await Runner(Settings(), db).resume(fl.workflow, report.run_id, {})


async def test_a_caller_that_gives_up_is_a_forced_failure_not_a_cancel(db, flow) -> None:
    fl = flow(
        {
            "name": "gave-up",
            "blocks": {
                "start": {"type": "start"},
                "wait": {"type": "function", "call": "FNS:slow"},
            },
            "connections": ["start -> wait"],
        },
        CODE,
    )
    handle = await Runner(Settings(), db).start(fl.workflow)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(handle.result(), 0.3)
    record = await db.get_run(handle.run_id)
    assert (record.status, record.finalization_path) == (
        RunStatus.FAILED,
        FinalizationPath.FORCE_FAILED,
    )
    assert "stopped waiting" in (record.error_message or "")
    assert record.cancel_requested_at is None


async def test_a_secret_inside_an_unstorable_output_is_masked_in_the_fallback(db, flow) -> None:
    secret = "hunter2-SECRET"
    fl = flow(
        {
            "name": "secret-set",
            "blocks": {
                "start": {"type": "start"},
                "leak": {
                    "type": "function",
                    "call": "FNS:secret_set",
                    "with": {"token": "{{ secrets.TOKEN }}"},
                },
            },
            "connections": ["start -> leak"],
        },
        CODE,
    )
    report = await Runner(Settings(secrets={"TOKEN": secret}), db).run(fl.workflow)
    record = await db.get_run(report.run_id)
    assert record.finalization_path is FinalizationPath.FALLBACK_COMPLETED
    stored = json.dumps([record.output, record.completion_failure, record.execution_data])
    assert secret not in stored and "***" in stored


async def test_resumes_continue_the_open_spans_instead_of_copying_them(db, flow) -> None:
    fl = flow(
        {
            "name": "loop-of-waits",
            "blocks": {
                "start": {"type": "start"},
                "lp": {
                    "type": "loop",
                    "count": 2,
                    "blocks": {
                        "f": {"type": "function", "call": "FNS:delay"},
                        "w": {"type": "wait", "for": "input"},
                    },
                    "connections": ["f -> w"],
                },
            },
            "connections": ["start -> lp"],
        },
        CODE,
    )
    runner = Runner(Settings(), db)
    report = await runner.run(fl.workflow)
    for answer in (1, 2):
        assert report.status is RunStatus.PAUSED
        report = await (await runner.resume(fl.workflow, report.run_id, {"v": answer})).result()
    assert report.status is RunStatus.COMPLETED
    record = await db.get_run(report.run_id)
    trace = record.execution_data["trace"]
    loops = [s for s in trace["children"] if s.get("block_id") == "lp"]
    assert len(loops) == 1 and loops[0]["status"] == "success"
    iterations = loops[0]["children"]
    assert [i["index"] for i in iterations] == [0, 1]
    assert all(i["status"] == "success" for i in iterations)
    assert [[c["name"] for c in i["children"]] for i in iterations] == [["f", "w"], ["f", "w"]]
    # root + start + loop + 2 iterations + 2 x (f, w)
    assert record.trace_span_count == 9
