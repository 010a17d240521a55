"""finalize / request_cancel / claim_resume: compare-and-set through the transition table."""

from __future__ import annotations

import math

import pytest

from flowtrail.errors import RunStateError, StoreError
from flowtrail.status import (
    FinalizationPath,
    FinalizedBy,
    RunStatus,
    can_transition,
)
from flowtrail.store import CancelOutcome, FinalizeOutcome, ProgressWrite

COMPLETED, FAILED, PAUSED, RUNNING = (
    RunStatus.COMPLETED,
    RunStatus.FAILED,
    RunStatus.PAUSED,
    RunStatus.RUNNING,
)


async def test_finalize_writes_everything_in_one_round_trip(store, kit) -> None:
    run_id = await kit.run()
    await store.write_progress(run_id, ProgressWrite(cost_total=5.0, marker_write_failures=2))
    fin = kit.fin(
        COMPLETED,
        output={"answer": 42},
        execution_data={"blocks": {"a": {"ok": True}}},
        completion_failure=None,
        has_trace_spans=True,
        trace_span_count=7,
        cost_total=4.0,  # lower than stored: ignored
        tokens_prompt=10,
        tokens_completion=5,
        tokens_total=15,
        models=["m1", "m2"],
        started=kit.started("last", kit.at(50)),
        completed=kit.completed("last", kit.at(59)),
        marker_write_failures=1,
    )
    before = store.round_trips
    outcome = await store.finalize(run_id, fin)
    assert store.round_trips - before == 1
    assert outcome == FinalizeOutcome(True, COMPLETED, FinalizationPath.COMPLETED)
    run = await store.get_run(run_id)
    assert (run.status, run.finalization_path, run.finalized_by) == (
        COMPLETED,
        FinalizationPath.COMPLETED,
        FinalizedBy.ENGINE,
    )
    assert (run.ended_at, run.duration_ms, run.level) == (kit.at(60), 60_000, "info")
    assert run.output == {"answer": 42}
    assert run.execution_data == {"blocks": {"a": {"ok": True}}}
    assert (run.has_trace_spans, run.trace_span_count) == (True, 7)
    assert (run.cost_total, run.marker_write_failures) == (5.0, 2)
    assert (run.tokens_prompt, run.tokens_completion, run.tokens_total) == (10, 5, 15)
    assert run.models == ["m1", "m2"]
    assert run.last_started_block == kit.started("last", kit.at(50))
    assert run.last_completed_block == kit.completed("last", kit.at(59))
    assert run.notes == []


async def test_finalize_folds_markers_monotonically(store, kit) -> None:
    run_id = await kit.run()
    newest = ProgressWrite(started=kit.started("new", kit.at(9)))
    await store.write_progress(run_id, newest)
    fin = kit.fin(COMPLETED, started=kit.started("old", kit.at(1)), cost_total=1.5)
    await store.finalize(run_id, fin)
    run = await store.get_run(run_id)
    assert run.last_started_block == newest.started
    assert run.cost_total == 1.5


async def test_failed_defaults_to_error_level(store, kit) -> None:
    run_id = await kit.run()
    fin = kit.fin(FAILED, error_message="boom", error_block_id="b7")
    assert (await store.finalize(run_id, fin)).persisted
    run = await store.get_run(run_id)
    assert (run.level, run.error_message, run.error_block_id) == ("error", "boom", "b7")


async def test_second_finalize_loses_and_is_kept_as_a_note(store, kit) -> None:
    run_id = await kit.run()
    assert (await store.finalize(run_id, kit.fin(COMPLETED, output=1))).persisted
    late = kit.fin(FAILED, error_message="too late", output={"partial": True})
    outcome = await store.finalize(run_id, late)
    assert outcome == FinalizeOutcome(False, COMPLETED, FinalizationPath.COMPLETED)
    run = await store.get_run(run_id)
    assert (run.status, run.output, run.error_message) == (COMPLETED, 1, None)
    [note] = run.notes
    assert note["kind"] == "late_result" and note["at"]
    assert (note["status"], note["path"], note["finalized_by"]) == (
        "failed",
        "force_failed",
        "engine",
    )
    assert (note["error"], note["output"]) == ("too late", {"partial": True})


async def test_a_large_late_output_is_left_out_of_the_note(store, kit) -> None:
    run_id = await kit.run()
    await store.finalize(run_id, kit.fin(COMPLETED))
    await store.finalize(run_id, kit.fin(COMPLETED, output="x" * 100_000))
    [note] = (await store.get_run(run_id)).notes
    assert "output" not in note


@pytest.mark.parametrize("loser", [COMPLETED, FAILED, PAUSED, RunStatus.CRASHED])
async def test_cancelled_is_never_overwritten(store, kit, loser: RunStatus) -> None:
    run_id = await kit.run()
    assert await store.request_cancel(run_id, "api") == CancelOutcome(RUNNING, True, False)
    cancelled = kit.fin(RunStatus.CANCELLED, output={"cancelled": True})
    assert (await store.finalize(run_id, cancelled)).persisted
    outcome = await store.finalize(run_id, kit.fin(loser, output={"late": 1}))
    assert outcome == FinalizeOutcome(False, RunStatus.CANCELLED, FinalizationPath.CANCELLED)
    run = await store.get_run(run_id)
    assert (run.status, run.output) == (RunStatus.CANCELLED, {"cancelled": True})
    assert [(n["status"], n["output"]) for n in run.notes] == [(loser.value, {"late": 1})]


async def test_finalize_follows_the_transition_table(store, kit) -> None:
    for source in RunStatus:
        for target in RunStatus:
            run_id = await kit.run(source)
            outcome = await store.finalize(run_id, kit.fin(target))
            expected = can_transition(source, target)
            assert outcome.persisted is expected, (source, target)
            run = await store.get_run(run_id)
            assert run.status is (target if expected else source), (source, target)
            assert len(run.notes) == (0 if expected else 1)


async def test_pause_resume_complete(store, kit) -> None:
    run_id = await kit.run()
    state = {"waiting_on": "approval", "blocks": {"a": 1}}
    paused = kit.fin(PAUSED, pause_state=state, output=None)
    assert await store.finalize(run_id, paused) == FinalizeOutcome(
        True, PAUSED, FinalizationPath.PAUSED
    )
    run = await store.get_run(run_id)
    assert (run.status, run.pause_state, run.ended_at) == (PAUSED, state, None)

    resumed = await store.claim_resume(run_id)
    assert (resumed.status, resumed.pause_state) == (RUNNING, state)
    assert resumed.finalization_path is None and resumed.ended_at is None
    with pytest.raises(RunStateError, match=f"run {run_id} is running, not paused"):
        await store.claim_resume(run_id)

    assert (await store.finalize(run_id, kit.fin(COMPLETED, output="done"))).persisted
    run = await store.get_run(run_id)
    assert (run.status, run.output, run.pause_state) == (COMPLETED, "done", None)


async def test_claim_resume_on_a_terminal_run(store, kit) -> None:
    run_id = await kit.run(COMPLETED)
    with pytest.raises(RunStateError, match="is completed, not paused"):
        await store.claim_resume(run_id)


async def test_cancel_a_running_run_only_flags_it(store, kit) -> None:
    run_id = await kit.run()
    assert await store.cancel_requested(run_id) is False
    assert await store.request_cancel(run_id, "alice") == CancelOutcome(RUNNING, True, False)
    assert await store.request_cancel(run_id, "bob") == CancelOutcome(RUNNING, True, False)
    assert await store.cancel_requested(run_id) is True
    run = await store.get_run(run_id)
    assert run.status is RUNNING and run.ended_at is None
    assert run.cancel_requested_at is not None and run.cancel_requested_by == "alice"


@pytest.mark.parametrize("status", [PAUSED, RunStatus.QUEUED])
async def test_cancel_a_run_without_an_engine_finalizes_it(store, kit, status) -> None:
    if status is PAUSED:
        run_id = await kit.run(started_at=kit.at(-3600))
        await store.finalize(run_id, kit.fin(PAUSED, pause_state={"s": 1}))
    else:
        run_id = await kit.run(status, started_at=kit.at(-3600))
    outcome = await store.request_cancel(run_id, "alice")
    assert outcome == CancelOutcome(RunStatus.CANCELLED, True, True)
    run = await store.get_run(run_id)
    assert (run.status, run.finalization_path, run.finalized_by) == (
        RunStatus.CANCELLED,
        FinalizationPath.CANCELLED,
        FinalizedBy.API,  # "alice" is not a FinalizedBy word
    )
    assert run.output == {"cancelled": True} and run.pause_state is None
    assert run.ended_at is not None and run.cancel_requested_at == run.ended_at
    expected_ms = (run.ended_at - kit.at(-3600)).total_seconds() * 1000
    assert run.duration_ms is not None and math.isclose(run.duration_ms, expected_ms, abs_tol=2)
    assert run.cancel_requested_by == "alice"


async def test_cancel_records_a_known_finalizer(store, kit) -> None:
    run_id = await kit.run(RunStatus.QUEUED)
    await store.request_cancel(run_id, "sweeper")
    assert (await store.get_run(run_id)).finalized_by is FinalizedBy.SWEEPER


async def test_cancel_duration_is_at_least_one_ms(store, kit) -> None:
    run_id = await kit.run(RunStatus.QUEUED, started_at=kit.at(10**6))  # in the future
    await store.request_cancel(run_id, "api")
    assert (await store.get_run(run_id)).duration_ms == 1


@pytest.mark.parametrize("status", [COMPLETED, FAILED, RunStatus.CANCELLED, RunStatus.CRASHED])
async def test_cancel_a_terminal_run_does_nothing(store, kit, status) -> None:
    run_id = await kit.run(status)
    assert await store.request_cancel(run_id, "api") == CancelOutcome(status, False, False)
    run = await store.get_run(run_id)
    assert run.cancel_requested_at is None and run.status is status


@pytest.mark.parametrize(
    "field,value",
    [
        ("output", {"tags": {"a", "b"}}),
        ("output", object()),
        ("output", math.nan),
        ("output", {"text": "nul \x00 inside"}),  # jsonb cannot hold it: refused on both
        ("execution_data", {"x": math.inf}),
        ("pause_state", {1j: 2}),
    ],
)
async def test_unencodable_result_raises_before_writing(store, kit, field, value) -> None:
    run_id = await kit.run()
    status = PAUSED if field == "pause_state" else COMPLETED
    before = store.round_trips
    with pytest.raises(StoreError, match=f"{field} is not JSON-encodable"):
        await store.finalize(run_id, kit.fin(status, **{field: value}))
    assert store.round_trips == before
    run = await store.get_run(run_id)
    assert (run.status, run.output, run.notes) == (RUNNING, None, [])


async def test_json_documents_round_trip_exactly(store, kit) -> None:
    run_id = await kit.run()
    output = {
        "escaped": "\\u0000 is just text",
        "unicode": "héllo ✓ \U0001f600",
        "big": 2**70,
        "float": 0.1,
        "nested": [{"a": None}, [], {}],
    }
    assert (await store.finalize(run_id, kit.fin(COMPLETED, output=output))).persisted
    assert (await store.get_run(run_id)).output == output
