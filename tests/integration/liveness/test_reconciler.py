"""Reconciliation with the job queue (Procrastinate's tables, PostgreSQL), both ways: a run
its job will never execute is ended by the reconciler with the job as evidence, and a job
still waiting or running for a run that ended is cancelled or asked to abort. A live lease
outranks whatever the queue says."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest

from flowtrail.liveness.sweeper import Sweeper
from flowtrail.settings import Settings
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store import NewRun, SqlStore, Worker
from flowtrail.store.common import utcnow

SETTINGS = Settings(lease_seconds=30)
ON_POSTGRES = pytest.mark.parametrize(
    "store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
W = Worker("another-host", 4242, "queue-worker")


@pytest.fixture
async def queue_db(db: SqlStore) -> SqlStore:
    """The store, with Procrastinate's tables (as ``flowtrail db upgrade`` applies them)."""
    if not (await db._fetch("SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS p", {}))[0][
        "p"
    ]:
        from procrastinate.schema import SchemaManager

        await db._fetch(SchemaManager.get_schema(), {})
    return db


async def sql(db: SqlStore, statement: str, **params: Any) -> list[dict[str, Any]]:
    return await db._fetch(statement, params)


async def job(db: SqlStore, status: str = "todo", worker: int | None = None) -> int:
    rows = await sql(
        db,
        "INSERT INTO procrastinate_jobs (queue_name, task_name, status, worker_id) "
        "VALUES ('flowtrail', 'flowtrail.run', %(status)s, %(worker)s) RETURNING id",
        status=status,
        worker=worker,
    )
    return int(rows[0]["id"])


async def queue_worker(db: SqlStore, heartbeat_ago: float) -> int:
    rows = await sql(
        db,
        "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (%(at)s) RETURNING id",
        at=utcnow() - timedelta(seconds=heartbeat_ago),
    )
    return int(rows[0]["id"])


async def run_with_job(
    db: SqlStore, job_id: int | None, status: RunStatus = RunStatus.QUEUED, lease: float = 30
) -> str:
    run_id = f"r-{uuid.uuid4().hex}"
    await db.put_snapshot("hash-wf", "wf", {"name": "wf"})
    running = status is RunStatus.RUNNING
    await db.create_run(
        NewRun(
            run_id, "wf", "hash-wf", status, "queue", utcnow(), {"n": 1},
            queue_name="flowtrail", worker=W if running else None,
            lease_seconds=lease if running else None,
        )
    )  # fmt: skip
    if job_id is not None:
        await sql(
            db,
            "UPDATE workflow_execution_logs SET job_id = %(job)s WHERE id = %(id)s",
            job=job_id,
            id=run_id,
        )
    return run_id


@ON_POSTGRES
async def test_queued_runs_their_job_will_never_execute_are_failed(queue_db: SqlStore) -> None:
    db = queue_db
    failed = await run_with_job(db, await job(db, "failed"))
    gone = await run_with_job(db, 999_999)  # a job id the queue no longer has
    stalled = await run_with_job(db, await job(db, "doing", await queue_worker(db, 600)))
    waiting = await run_with_job(db, await job(db, "todo"))
    taken = await run_with_job(db, await job(db, "doing", await queue_worker(db, 1)))
    unlinked = await run_with_job(db, None)  # its job is being deferred: no id yet

    report = await Sweeper(db, SETTINGS).sweep_once()
    assert report.queue is True
    assert {a.run_id: a.action for a in report.actions} == {
        failed: "reconciled",
        gone: "reconciled",
        stalled: "reconciled",
    }
    for run_id, cause in ((failed, "job_failed"), (gone, "job_gone"), (stalled, "worker_stalled")):
        row = await db.get_run(run_id)
        assert (row.status, row.finalization_path, row.finalized_by) == (
            RunStatus.FAILED, FinalizationPath.FORCE_FAILED, FinalizedBy.RECONCILER,
        )  # fmt: skip
        assert row.error_message is not None and "no worker will ever run it" in row.error_message
        (note,) = row.notes
        assert (note["kind"], note["who"]) == ("reconciled", "reconciler")
        assert note["evidence"]["crash_cause"] == cause
        assert note["evidence"]["job"]["id"] == row.job_id
    for run_id in (waiting, taken, unlinked):
        assert (await db.get_run(run_id)).status is RunStatus.QUEUED


@ON_POSTGRES
async def test_a_running_run_is_reconciled_only_once_its_lease_expired(
    queue_db: SqlStore,
) -> None:
    db = queue_db
    aborted = await job(db, "aborted")
    alive = await run_with_job(db, aborted, RunStatus.RUNNING, lease=30)
    dead = await run_with_job(db, await job(db, "doing"), RunStatus.RUNNING, lease=0.05)
    await asyncio.sleep(0.1)

    report = await Sweeper(db, SETTINGS).sweep_once()
    assert [(a.run_id, a.status, a.crash_cause) for a in report.actions] == [
        (dead, RunStatus.CRASHED, "worker_gone")
    ]
    row = await db.get_run(dead)
    assert (row.finalized_by, row.crash_cause) == (FinalizedBy.RECONCILER, "worker_gone")
    assert row.error_message is not None and "its lease expired" in row.error_message
    assert "worker queue-worker (pid 4242 on another-host)" in row.error_message
    # A live lease outranks the queue: its engine is renewing it, whatever the job says.
    assert (await db.get_run(alive)).status is RunStatus.RUNNING


@ON_POSTGRES
async def test_jobs_of_ended_runs_are_cancelled_or_asked_to_abort(queue_db: SqlStore) -> None:
    db = queue_db
    todo, doing, recent = await job(db), await job(db, "doing"), await job(db, "doing")
    cancelled = await run_with_job(db, todo)
    finished = await run_with_job(db, doing)
    just_now = await run_with_job(db, recent)
    await db.request_cancel(cancelled, "cli")  # a queued run: cancelled at once
    for run_id, ago in ((finished, 60), (just_now, 0)):
        await sql(
            db,
            "UPDATE workflow_execution_logs SET status = 'completed', "
            "finalization_path = 'completed', ended_at = %(at)s WHERE id = %(id)s",
            at=utcnow() - timedelta(seconds=ago),
            id=run_id,
        )

    report = await Sweeper(db, SETTINGS).sweep_once()
    assert {(j.job_id, j.action) for j in report.jobs} == {
        (todo, "cancelled"),
        (doing, "abort_requested"),
    }
    jobs = {
        r["id"]: (r["status"], r["abort_requested"])
        for r in await sql(db, "SELECT id, status::text, abort_requested FROM procrastinate_jobs")
    }
    assert jobs[todo][0] == "cancelled"
    assert jobs[doing] == ("doing", True)  # its worker is told to abort it
    assert jobs[recent] == ("doing", False)  # its run just ended: the job ends by itself
    note = (await db.get_run(cancelled)).notes[-1]
    assert (note["kind"], note["who"]) == ("job_cancelled", "reconciler")
    assert (await db.get_run(finished)).notes[-1]["kind"] == "job_abort_requested"

    again = await Sweeper(db, SETTINGS).sweep_once()
    assert again.jobs == ()  # done once


@ON_POSTGRES
async def test_reconciliation_runs_with_an_empty_queue(queue_db: SqlStore) -> None:
    report = await Sweeper(queue_db, SETTINGS).sweep_once()
    assert report.queue is True and report.actions == () and report.jobs == ()


async def test_without_the_queue_tables_there_is_nothing_to_reconcile(db: SqlStore) -> None:
    present = await db.reconcile_scan(utcnow(), utcnow(), utcnow())
    if db.backend == "sqlite":
        assert present is None
    report = await Sweeper(db, SETTINGS).sweep_once()
    assert report.queue is (present is not None)
