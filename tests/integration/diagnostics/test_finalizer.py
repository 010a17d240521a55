"""The Finalizer's own contract, on a real row: one terminal write, idempotent, and an error
attempt allowed after a failed non-error attempt."""

from __future__ import annotations

import time

from flowtrail.engine.events import BlockCompleted, BlockStarted
from flowtrail.engine.executor import RunResult
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from tests.integration.diagnostics.support import (
    add_oversize_trigger,
    add_reject_trigger,
    bare_run,
    drop_trigger,
)


async def _one_block(run) -> None:
    t0 = time.time()
    await run.recorder.block_started(BlockStarted(run.run_id, "a", "A", "function", (), t0))
    run.recorder.record(
        BlockCompleted(run.run_id, "a", "A", "function", (), t0, t0 + 0.001, True, output={"v": 1})
    )


async def test_finalizing_twice_writes_once_and_returns_the_first_result(db) -> None:
    run = await bare_run(db)
    await _one_block(run)
    result = RunResult(RunStatus.COMPLETED, output={"v": 1})

    first = await run.finalizer.finalize(result)
    assert first is not None and first.persisted
    assert (first.status, first.path) == (RunStatus.COMPLETED, FinalizationPath.COMPLETED)
    row = await db.get_run(run.run_id)
    trips = db.round_trips

    again = await run.finalizer.finalize(result)
    other = await run.finalizer.finalize(RunResult(RunStatus.FAILED, error="late"))
    forced = await run.finalizer.force_fail("late too")
    assert again is first and other is first and forced is first
    assert db.round_trips == trips  # nothing written, nothing even read
    after = await db.get_run(run.run_id)
    assert after == row
    assert after.last_completed_block is not None and after.last_completed_block.block_id == "a"


async def test_a_failed_success_attempt_is_followed_by_an_error_attempt(db, store_url) -> None:
    """Primary and fallback both refused (two real triggers): finalize returns None and
    says why; another success attempt writes nothing; an error attempt then runs."""
    run = await bare_run(db)
    await _one_block(run)
    await add_oversize_trigger(store_url, "ft_oversize", 100)
    await add_reject_trigger(
        store_url, "ft_no_fallback", "NEW.finalization_path = 'fallback_completed'"
    )

    assert await run.finalizer.finalize(RunResult(RunStatus.COMPLETED, output={"v": 1})) is None
    failure = run.finalizer.completion_failure or ""
    assert "injected by ft_oversize" in failure and "injected by ft_no_fallback" in failure
    row = await db.get_run(run.run_id)
    assert row.status is RunStatus.RUNNING and row.finalization_path is None

    trips = db.round_trips
    assert await run.finalizer.finalize(RunResult(RunStatus.COMPLETED, output={"v": 1})) is None
    assert db.round_trips == trips

    await drop_trigger(store_url, "ft_oversize")
    outcome = await run.finalizer.force_fail("the client gave up")
    assert outcome is not None and outcome.persisted
    assert (outcome.status, outcome.path) == (RunStatus.FAILED, FinalizationPath.FORCE_FAILED)
    row = await db.get_run(run.run_id)
    assert row.status is RunStatus.FAILED
    assert row.finalization_path is FinalizationPath.FORCE_FAILED
    assert row.finalized_by is FinalizedBy.ENGINE
    assert row.error_message == "the client gave up"
    assert row.has_trace_spans  # the trigger is gone: the full record fits now
    assert row.last_completed_block is not None and row.last_completed_block.block_id == "a"
    assert row.ended_at is not None and row.duration_ms is not None and row.duration_ms >= 1

    # and from now on every attempt returns that outcome without writing
    trips = db.round_trips
    assert await run.finalizer.force_fail("again") is outcome
    assert await run.finalizer.finalize(RunResult(RunStatus.COMPLETED)) is outcome
    assert db.round_trips == trips


async def test_a_failed_error_attempt_blocks_later_attempts(db, store_url) -> None:
    run = await bare_run(db)
    await add_reject_trigger(store_url, "ft_no_failed", "NEW.status = 'failed'")
    assert await run.finalizer.force_fail("first") is None
    trips = db.round_trips
    assert await run.finalizer.force_fail("second") is None
    assert await run.finalizer.finalize(RunResult(RunStatus.COMPLETED)) is None
    assert db.round_trips == trips
    assert (await db.get_run(run.run_id)).status is RunStatus.RUNNING


async def test_error_completion_with_all_success_spans_is_still_failed(db) -> None:
    run = await bare_run(db)
    await _one_block(run)
    outcome = await run.finalizer.finalize(
        RunResult(RunStatus.FAILED, error="gave up waiting", error_block_id=None)
    )
    assert outcome is not None and outcome.persisted
    row = await db.get_run(run.run_id)
    assert (row.status, row.finalization_path) == (RunStatus.FAILED, FinalizationPath.FORCE_FAILED)
    assert row.error_message == "gave up waiting"
    assert row.level == "error"


async def test_a_recorder_resumed_from_a_paused_row_continues_its_usage_and_spans(db) -> None:
    from flowtrail.diagnostics.recorder import Recorder
    from flowtrail.engine.events import Tokens

    run = await bare_run(db)
    t0 = time.time()
    await run.recorder.block_started(BlockStarted(run.run_id, "a", "A", "agent", (), t0))
    run.recorder.record(
        BlockCompleted(
            run.run_id,
            "a",
            "A",
            "agent",
            (),
            t0,
            t0 + 0.001,
            True,
            tokens=Tokens(2, 3),
            model="m",
            cost=0.5,
        )
    )
    paused = await run.finalizer.finalize(
        RunResult(RunStatus.PAUSED, pause_state={"state": {}}, waiting_blocks=("w",))
    )
    assert paused is not None and paused.persisted
    row = await db.get_run(run.run_id)

    resumed = Recorder(db, run.run_id, "bare", run.started_at, cancel_poll_seconds=0)
    resumed.resume_from(row)
    assert resumed.usage.cost_total == 0.5
    assert (resumed.usage.tokens_prompt, resumed.usage.tokens_completion) == (2, 3)
    assert resumed.usage.models == {"m"}
    assert resumed.spans.count == row.trace_span_count


async def test_the_unrecorded_json_has_the_recorded_shape(db) -> None:
    from flowtrail.diagnostics.view import RECORD_KEYS, record_json, unrecorded_json
    from flowtrail.runner import RunReport

    run = await bare_run(db)
    await _one_block(run)
    await run.finalizer.finalize(RunResult(RunStatus.COMPLETED, output={"v": 1}))
    recorded = record_json(await db.get_run(run.run_id))
    assert tuple(recorded) == (*RECORD_KEYS, "execution_data")
    report = RunReport("r", "w", RunStatus.COMPLETED, {"v": 1}, None, None, None)
    unrecorded = unrecorded_json(report)
    assert tuple(unrecorded) == (*RECORD_KEYS, "recorded")
    assert unrecorded["recorded"] is False and unrecorded["output"] == {"v": 1}
