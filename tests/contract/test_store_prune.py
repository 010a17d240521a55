"""Retention on both backends: ``flowtrail.retention.prune`` over real databases."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from tests.contract.conftest import T0, Kit

from flowtrail.diagnostics.view import record_json, step_json
from flowtrail.retention import NotPrunableError, prune
from flowtrail.status import RunStatus
from flowtrail.store import SqlStore, open_store
from flowtrail.store.records import StepWrite

OLD = T0
NEW = T0 + timedelta(days=35)
NOW = T0 + timedelta(days=40)  # with older_than=30d the cutoff is T0 + 10 days
MONTH = timedelta(days=30)
# What a prune may change on a row; every other field of the record stays as it was.
DROPPED = {"output", "execution_data", "pruned_at"}


async def ended(
    kit: Kit,
    status: RunStatus,
    started_at: Any = OLD,
    *,
    workflow: str = "wf",
    steps: int = 3,
    error_path: list[str] | None = None,
) -> str:
    run_id = await kit.run(RunStatus.RUNNING, started_at=started_at, workflow=workflow)
    ended_at = started_at + timedelta(seconds=60)
    failing = status is not RunStatus.COMPLETED
    trace = {"name": workflow, "children": [{"name": f"b{i}", "x": "y" * 500} for i in range(20)]}
    execution_data: dict[str, Any] = {"trace": trace, "truncation": None}
    if error_path:
        execution_data["error_path"] = error_path
    fin = kit.fin(
        status,
        ended_at=ended_at,
        output={"answer": "z" * 2000},
        execution_data=execution_data,
        has_trace_spans=True,
        trace_span_count=21,
        error_message="it broke" if failing else None,
        error_block_id="b2" if failing else None,
        completion_failure="no response block" if failing else None,
        cost_total=1.25,
        tokens_prompt=10,
        tokens_completion=5,
        tokens_total=15,
        models=["gpt-x"],
        started=kit.started("b2", started_at + timedelta(seconds=2)),
        completed=kit.completed("b1", started_at + timedelta(seconds=1)),
        steps=tuple(
            StepWrite(
                position=f"p{i}",
                block_id=f"b{i}",
                block_type="function",
                status="completed",
                started_at=started_at,
                ended_at=ended_at,
                tries=1,
                output={"out": "o" * 300},
            )
            for i in range(steps)
        ),
    )
    outcome = await kit.store.finalize(run_id, fin)
    assert outcome.persisted
    return run_id


async def snapshot(store: SqlStore, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    record = await store.get_run(run_id)
    return record_json(record), [step_json(s) for s in await store.list_steps(run_id)]


def assert_pruned(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Field by field: every summary field is what it was; the trace and output are gone."""
    for key, value in before.items():
        if key not in DROPPED:
            assert after[key] == value, key
    assert after["output"] is None
    assert before["pruned_at"] is None and after["pruned_at"] is not None
    data = after["execution_data"]
    assert data is None or set(data) == {"error_path"}


async def test_prunes_old_ended_runs_and_keeps_every_summary_field(store, kit) -> None:
    old = {
        status: await ended(
            kit, status, error_path=["child", "b2"] if status.value == "failed" else None
        )
        for status in (
            RunStatus.COMPLETED,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
            RunStatus.CRASHED,
        )
    }
    new = await ended(kit, RunStatus.COMPLETED, NEW)
    before = {run_id: await snapshot(store, run_id) for run_id in [*old.values(), new]}

    report = await prune(store, older_than=MONTH, dry_run=False, now=NOW)

    assert (report.runs, report.steps) == (4, 12)
    assert report.bytes > 4 * (10_000 + 2000 + 3 * 300)  # traces, outputs, step outputs
    for run_id in old.values():
        record, steps = await snapshot(store, run_id)
        assert_pruned(before[run_id][0], record)
        assert steps == []
        assert before[run_id][1] != []
    failed, _ = await snapshot(store, old[RunStatus.FAILED])
    assert failed["error"] == {"message": "it broke", "block_id": "b2", "path": ["child", "b2"]}
    assert failed["execution_data"] == {"error_path": ["child", "b2"]}
    assert (await store.get_run(old[RunStatus.COMPLETED])).execution_data is None
    assert await snapshot(store, new) == before[new]  # too young: untouched

    again = await prune(store, older_than=MONTH, dry_run=False, now=NOW)
    assert (again.runs, again.steps, again.bytes) == (0, 0, 0)
    # the snapshot a retry runs is kept
    assert await store.get_snapshot("hash-wf") == {"name": "wf"}


async def test_status_filter(store, kit) -> None:
    done = await ended(kit, RunStatus.COMPLETED)
    failed = await ended(kit, RunStatus.FAILED)
    report = await prune(
        store, older_than=MONTH, statuses=(RunStatus.FAILED,), dry_run=False, now=NOW
    )
    assert report.runs == 1 and report.statuses == (RunStatus.FAILED,)
    assert (await store.get_run(failed)).pruned_at is not None
    assert (await store.get_run(done)).pruned_at is None
    assert await store.list_steps(done) != []


async def test_dry_run_changes_nothing_and_says_what_would_go(store, kit) -> None:
    ids = [await ended(kit, s) for s in (RunStatus.COMPLETED, RunStatus.FAILED)]
    await ended(kit, RunStatus.COMPLETED, NEW)
    before = [await snapshot(store, run_id) for run_id in ids]

    dry = await prune(store, older_than=MONTH, dry_run=True, batch=1, now=NOW)

    assert [await snapshot(store, run_id) for run_id in ids] == before
    assert (dry.dry_run, dry.runs, dry.steps) == (True, 2, 6)
    real = await prune(store, older_than=MONTH, dry_run=False, now=NOW)
    assert (real.runs, real.steps, real.bytes) == (dry.runs, dry.steps, dry.bytes)


async def test_queued_running_and_paused_runs_are_never_touched(store, kit) -> None:
    queued = await kit.run(RunStatus.QUEUED, started_at=OLD)
    running = await kit.run(RunStatus.RUNNING, started_at=OLD)
    paused = await kit.run(RunStatus.RUNNING, started_at=OLD)
    outcome = await store.finalize(
        paused,
        kit.fin(
            RunStatus.PAUSED,
            pause_state={"waiting": ["ask"], "state": {"big": "s" * 1000}},
            execution_data={"trace": {"name": "wf"}},
            output={"partial": True},
        ),
    )
    assert outcome.persisted
    before = [await snapshot(store, run_id) for run_id in (queued, running, paused)]

    report = await prune(store, older_than=timedelta(0), dry_run=False, now=NOW)

    assert report.runs == 0
    assert [await snapshot(store, r) for r in (queued, running, paused)] == before
    with pytest.raises(NotPrunableError) as info:
        await prune(store, older_than=MONTH, statuses=(RunStatus.PAUSED,), dry_run=True)
    assert info.value.code == "not_prunable"


async def test_a_run_that_ended_recently_is_kept_even_if_it_started_long_ago(store, kit) -> None:
    run_id = await kit.run(RunStatus.RUNNING, started_at=OLD)
    late = kit.fin(RunStatus.COMPLETED, ended_at=NOW - timedelta(days=1), duration_ms=1)
    assert (await store.finalize(run_id, late)).persisted
    report = await prune(store, older_than=MONTH, dry_run=False, now=NOW)
    assert report.runs == 0 and (await store.get_run(run_id)).pruned_at is None


async def test_batches_walk_every_old_run_once(store, kit) -> None:
    ids = [
        await ended(kit, RunStatus.COMPLETED, OLD + timedelta(minutes=i), steps=1) for i in range(7)
    ]
    report = await prune(store, older_than=MONTH, dry_run=False, batch=3, now=NOW)
    assert (report.runs, report.steps, report.batches) == (7, 7, 3)
    assert all([(await store.get_run(r)).pruned_at is not None for r in ids])


async def test_a_concurrent_writer_is_not_held_for_the_whole_prune(store, kit) -> None:
    """One batch per transaction: a write to a row the prune already passed (on SQLite:
    any write) goes through while later runs are still waiting to be pruned, instead of
    after the whole prune."""
    n = 600
    first = await ended(kit, RunStatus.FAILED, OLD - timedelta(days=1), steps=1)
    for i in range(n - 1):
        await ended(kit, RunStatus.COMPLETED, OLD + timedelta(seconds=i), steps=1)
    last = await ended(kit, RunStatus.COMPLETED, OLD + timedelta(days=1), steps=1)
    async with open_store(store.url) as reader, open_store(store.url) as writer:
        task = asyncio.create_task(prune(store, older_than=MONTH, dry_run=False, batch=5, now=NOW))
        while (await reader.get_run(first)).pruned_at is None:
            assert not task.done(), "the first batch was not visible before the prune ended"
            await asyncio.sleep(0.002)
        await writer.add_note(first, {"kind": "audit", "message": "looked at it"})
        pending_after_write = (await reader.get_run(last)).pruned_at is None
        report = await task
    assert pending_after_write, "the write waited for the whole prune"
    assert report.runs == n + 1
    assert (await store.get_run(first)).notes[-1]["message"] == "looked at it"
    assert (await store.get_run(last)).pruned_at is not None
