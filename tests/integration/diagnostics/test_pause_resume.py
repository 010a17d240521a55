"""Pause checkpoints on the row, resume from them exactly where the run stopped, and the
paused-completion fallback."""

from __future__ import annotations

import asyncio

import pytest

from flowtrail.diagnostics.view import record_json
from flowtrail.errors import RunStateError
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from tests.integration.diagnostics.support import (
    add_oversize_trigger,
    count_spans,
    spans_of,
    trace_of,
)

CODE = """
import threading
from pathlib import Path

HERE = Path(__file__).parent
LOCK = threading.Lock()  # sync blocks run in worker threads, possibly at once

def _count(name):
    with LOCK, open(HERE / f"{name}.count", "a") as calls:
        calls.write("x")

def counted(name, payload=None):
    _count(name)
    return payload if payload is not None else name

def echo(x):
    return x
"""


def _calls(fl, name: str) -> int:
    path = fl.folder / f"{name}.count"
    return len(path.read_text()) if path.exists() else 0


def approval(payload: object = None) -> dict:
    return {
        "name": "approval",
        "blocks": {
            "start": {"type": "start"},
            "prep": {
                "type": "function",
                "call": "FNS:counted",
                "with": {"name": "prep", "payload": payload},
            },
            "ask": {"type": "wait", "for": "input", "message": "approve {{ prep.result }}?"},
            "after": {"type": "function", "call": "FNS:echo", "with": {"x": "{{ ask.input.x }}"}},
        },
        "connections": ["start -> prep", "prep -> ask", "ask -> after"],
    }


async def test_pause_then_resume_continues_from_the_snapshot(db, flow) -> None:
    fl = flow(approval("ok"), CODE)
    runner = Runner(Settings(), db)
    report = await runner.run(fl.workflow)

    assert report.status is RunStatus.PAUSED
    assert report.waiting_blocks == ("ask",)
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.PAUSED
    assert rec.finalization_path is FinalizationPath.PAUSED
    assert rec.finalized_by is FinalizedBy.ENGINE
    assert rec.ended_at is None
    assert rec.completion_failure is None
    assert isinstance(rec.pause_state, dict) and rec.pause_state["waiting"] == ["ask"]
    assert record_json(rec)["paused"] == {"waiting_blocks": ["ask"], "message": "approve ok?"}
    assert rec.last_started_block is not None and rec.last_started_block.block_id == "ask"
    assert rec.last_completed_block is not None and rec.last_completed_block.block_id == "prep"
    assert rec.has_trace_spans and rec.trace_span_count == count_spans(trace_of(rec))
    assert _calls(fl, "prep") == 1

    handle = await runner.resume(fl.workflow, report.run_id, {"x": 42})
    done = await handle.result()

    assert done.status is RunStatus.COMPLETED
    assert done.output == {"result": 42}
    assert _calls(fl, "prep") == 1  # not run again
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.COMPLETED
    assert rec.finalization_path is FinalizationPath.COMPLETED
    assert rec.output == {"result": 42}
    assert rec.pause_state is None
    assert rec.ended_at is not None and rec.duration_ms is not None and rec.duration_ms >= 1
    assert rec.last_completed_block is not None and rec.last_completed_block.block_id == "after"
    trace = trace_of(rec)
    assert rec.trace_span_count == count_spans(trace)
    assert len(spans_of(trace, block_id="prep")) == 1
    (after,) = spans_of(trace, block_id="after")
    assert after["input"] == {"x": 42}


async def test_resume_a_loop_in_progress_pauses_again_then_completes(db, flow) -> None:
    fl = flow(
        {
            "name": "loop-approvals",
            "blocks": {
                "start": {"type": "start"},
                "lp": {
                    "type": "loop",
                    "count": 2,
                    "blocks": {
                        "f": {
                            "type": "function",
                            "call": "FNS:counted",
                            "with": {"name": "f", "payload": "{{ loop.index }}"},
                        },
                        "w": {"type": "wait", "for": "input"},
                    },
                    "connections": ["f -> w"],
                },
                "tail": {"type": "function", "call": "FNS:echo", "with": {"x": "{{ lp.results }}"}},
            },
            "connections": ["start -> lp", "lp -> tail"],
        },
        CODE,
    )
    runner = Runner(Settings(), db)
    first = await runner.run(fl.workflow)
    assert first.status is RunStatus.PAUSED
    assert _calls(fl, "f") == 1

    second = await (await runner.resume(fl.workflow, first.run_id, {"v": 1})).result()
    assert second.status is RunStatus.PAUSED
    assert _calls(fl, "f") == 2
    rec = await db.get_run(first.run_id)
    assert (rec.status, rec.finalization_path) == (RunStatus.PAUSED, FinalizationPath.PAUSED)

    third = await (await runner.resume(fl.workflow, first.run_id, {"v": 2})).result()
    assert third.status is RunStatus.COMPLETED
    assert _calls(fl, "f") == 2
    assert third.output == {"result": [{"input": {"v": 1}}, {"input": {"v": 2}}]}
    rec = await db.get_run(first.run_id)
    assert (rec.status, rec.finalization_path) == (RunStatus.COMPLETED, FinalizationPath.COMPLETED)
    assert rec.trace_span_count == count_spans(trace_of(rec))
    assert len(spans_of(trace_of(rec), block_id="f")) == 2


async def test_resume_a_parallel_in_progress(db, flow) -> None:
    fl = flow(
        {
            "name": "par-approvals",
            "blocks": {
                "start": {"type": "start"},
                "par": {
                    "type": "parallel",
                    "count": 3,
                    "blocks": {
                        "f": {
                            "type": "function",
                            "call": "FNS:counted",
                            "with": {"name": "f", "payload": "{{ parallel.index }}"},
                        },
                        "w": {"type": "wait", "for": "input"},
                        "g": {
                            "type": "function",
                            "call": "FNS:echo",
                            "with": {"x": "{{ [f.result, w.input.ok] }}"},
                        },
                    },
                    "connections": ["f -> w", "w -> g"],
                },
            },
            "connections": ["start -> par"],
        },
        CODE,
    )
    runner = Runner(Settings(), db)
    report = await runner.run(fl.workflow)
    assert report.status is RunStatus.PAUSED
    assert set(report.waiting_blocks) == {"w"}
    assert 1 <= _calls(fl, "f") <= 3  # a branch may not have begun when the pause came
    # A pause stops the other branches from launching more blocks, so a branch that had
    # not reached its wait yet pauses there after the resume: resume until done.
    resumes = 0
    while report.status is RunStatus.PAUSED:
        resumes += 1
        assert resumes <= 3
        rec = await db.get_run(report.run_id)
        assert (rec.status, rec.finalization_path) == (RunStatus.PAUSED, FinalizationPath.PAUSED)
        handle = await runner.resume(fl.workflow, report.run_id, {"ok": True})
        report = await handle.result()

    assert report.status is RunStatus.COMPLETED
    assert _calls(fl, "f") == 3  # never run again
    assert report.output == {"results": [{"result": [i, True]} for i in range(3)]}
    rec = await db.get_run(report.run_id)
    assert (rec.status, rec.finalization_path) == (RunStatus.COMPLETED, FinalizationPath.COMPLETED)
    assert rec.output == report.output
    assert rec.trace_span_count == count_spans(trace_of(rec))


async def test_resume_is_refused_unless_the_run_is_paused(db, flow) -> None:
    fl = flow(approval(), CODE)
    runner = Runner(Settings(), db)
    paused = await runner.run(fl.workflow)
    await (await runner.resume(fl.workflow, paused.run_id, {"x": 1})).result()
    before = await db.get_run(paused.run_id)

    with pytest.raises(RunStateError):
        await runner.resume(fl.workflow, paused.run_id, {"x": 2})
    after = await db.get_run(paused.run_id)
    assert after.status is RunStatus.COMPLETED
    assert after.updated_at == before.updated_at


async def test_a_paused_run_can_be_cancelled_and_then_not_resumed(db, db2, flow) -> None:
    fl = flow(approval(), CODE)
    runner = Runner(Settings(), db)
    paused = await runner.run(fl.workflow)

    outcome = await db2.request_cancel(paused.run_id, "api")
    assert outcome.status is RunStatus.CANCELLED and outcome.requested and outcome.finalized
    rec = await db.get_run(paused.run_id)
    assert rec.status is RunStatus.CANCELLED
    assert rec.finalization_path is FinalizationPath.CANCELLED
    assert rec.finalized_by is FinalizedBy.API
    assert rec.pause_state is None
    assert rec.ended_at is not None and rec.duration_ms is not None and rec.duration_ms >= 1
    assert rec.last_started_block is not None and rec.last_started_block.block_id == "ask"

    with pytest.raises(RunStateError):
        await runner.resume(fl.workflow, paused.run_id, {"x": 1})
    assert (await db.get_run(paused.run_id)).status is RunStatus.CANCELLED
    assert _calls(fl, "prep") == 1


async def test_paused_completion_failure_falls_back_and_stays_resumable(
    db, flow, store_url
) -> None:
    """The trace cannot be stored at the pause: the row still says paused (path paused),
    keeps the snapshot and says why; the run resumes and completes."""
    fl = flow(approval("y" * 3000), CODE)
    await add_oversize_trigger(store_url, "ft_oversize", 2000)
    runner = Runner(Settings(), db)
    report = await runner.run(fl.workflow)

    assert report.status is RunStatus.PAUSED
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.PAUSED
    assert rec.finalization_path is FinalizationPath.PAUSED
    assert "injected by ft_oversize" in (rec.completion_failure or "")
    assert isinstance(rec.pause_state, dict) and rec.pause_state["waiting"] == ["ask"]
    assert not rec.has_trace_spans
    assert rec.last_started_block is not None and rec.last_started_block.block_id == "ask"

    done = await (await runner.resume(fl.workflow, report.run_id, {"x": "go"})).result()
    assert done.status is RunStatus.COMPLETED
    assert done.output == {"result": "go"}
    assert _calls(fl, "prep") == 1
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.COMPLETED
    assert rec.finalization_path is FinalizationPath.COMPLETED  # the new trace is small
    assert rec.output == {"result": "go"}
    assert rec.pause_state is None


def _loop_then_ask() -> dict:
    return {
        "name": "loop-then-ask",
        "blocks": {
            "start": {"type": "start"},
            "lp": {
                "type": "loop",
                "count": 60,
                "blocks": {
                    "b": {"type": "function", "call": "FNS:echo", "with": {"x": "{{ loop.index }}"}}
                },
            },
            "ask": {"type": "wait", "for": "input"},
            "after": {"type": "function", "call": "FNS:echo", "with": {"x": "{{ ask.input.x }}"}},
        },
        "connections": ["start -> lp", "lp -> ask", "ask -> after"],
    }


async def _run_and_resume(runner: Runner, fl) -> str:
    paused = await runner.run(fl.workflow)
    assert paused.status is RunStatus.PAUSED
    done = await (await runner.resume(fl.workflow, paused.run_id, {"x": 1})).result()
    assert done.status is RunStatus.COMPLETED
    return paused.run_id


@pytest.mark.parametrize("fault", ["compacted", "dropped"])
async def test_span_count_stays_exact_across_a_resume(db, flow, store_url, fault) -> None:
    fl = flow(_loop_then_ask(), CODE)
    reference = await db.get_run(await _run_and_resume(Runner(Settings(), db), fl))
    assert reference.trace_span_count == count_spans(trace_of(reference))

    if fault == "compacted":
        runner = Runner(Settings(trace_budget_bytes=4000), db)
    else:
        await add_oversize_trigger(store_url, "ft_oversize", 4000)
        runner = Runner(Settings(), db)
    paused_id = await _run_and_resume(runner, fl)
    rec = await db.get_run(paused_id)
    assert rec.status is RunStatus.COMPLETED
    assert rec.trace_span_count == reference.trace_span_count


async def test_two_resumes_at_once_only_one_wins(db, db2, flow) -> None:
    fl = flow(approval(), CODE)
    paused = await Runner(Settings(), db).run(fl.workflow)
    assert paused.status is RunStatus.PAUSED

    results = await asyncio.gather(
        Runner(Settings(), db).resume(fl.workflow, paused.run_id, {"x": "one"}),
        Runner(Settings(), db2).resume(fl.workflow, paused.run_id, {"x": "two"}),
        return_exceptions=True,
    )
    handles = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(handles) == 1 and len(refused) == 1
    assert isinstance(refused[0], RunStateError)
    done = await handles[0].result()
    assert done.status is RunStatus.COMPLETED
    rec = await db.get_run(paused.run_id)
    assert rec.status is RunStatus.COMPLETED and rec.output == done.output
    assert _calls(fl, "prep") == 1
