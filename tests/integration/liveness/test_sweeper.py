"""The sweeper on both backends: each pass ends the runs nobody else will end (expired
lease, overdue cancel, expired queue entry), each by a compare-and-set on the row as it
was seen, with a note; a run that moved on meanwhile is left alone, and two sweepers at
once end each run once."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import uuid
from datetime import timedelta

import pytest

from flowtrail.liveness import endings
from flowtrail.liveness.sweeper import Sweeper, run_sweeper
from flowtrail.settings import Settings
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store import (
    CompletedMarker,
    NewRun,
    ProgressWrite,
    SqlStore,
    StartedMarker,
    Worker,
)
from flowtrail.store.common import utcnow
from flowtrail.store.queries import load_queries
from flowtrail.store.records import SweepScan

SETTINGS = Settings(lease_seconds=30, cancel_grace_seconds=0.2)
SHORT = 0.05  # a lease that is over by the time the test sweeps


def dead_pid() -> int:
    """The pid of a process of this host that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


HERE = Worker(socket.gethostname(), os.getpid(), "live-worker")
ELSEWHERE = Worker("another-host", 4242, "remote-worker")


async def running(
    store: SqlStore, worker: Worker = ELSEWHERE, lease: float = SHORT, markers: bool = True
) -> str:
    """A running run under lease epoch 1, with start/completion markers written by its
    engine."""
    run_id = f"run-{uuid.uuid4().hex}"
    await store.put_snapshot("hash-wf", "wf", {"name": "wf"})
    now = utcnow()
    await store.create_run(
        NewRun(
            run_id, "wf", "hash-wf", RunStatus.RUNNING, "test", now, {"n": 1},
            worker=worker, lease_seconds=lease,
        )
    )  # fmt: skip
    if markers:
        write = ProgressWrite(
            started=StartedMarker("second", "Second", "function", now + timedelta(seconds=0.002)),
            completed=CompletedMarker("first", "First", "function", now, True),
            epoch=1,
        )
        assert not await store.write_progress(run_id, write)
    return run_id


async def queued(store: SqlStore, expires_in: float) -> str:
    run_id = f"q-{uuid.uuid4().hex}"
    await store.put_snapshot("hash-wf", "wf", {"name": "wf"})
    await store.create_run(
        NewRun(
            run_id, "wf", "hash-wf", RunStatus.QUEUED, "queue", utcnow(), {"n": 1},
            queue_name="flowtrail", expires_at=utcnow() + timedelta(seconds=expires_in),
        )
    )  # fmt: skip
    return run_id


async def test_an_expired_lease_ends_crashed_with_markers_and_evidence(db: SqlStore) -> None:
    dead = await running(db)
    alive = await running(db, lease=30)
    await asyncio.sleep(2 * SHORT)

    report = await Sweeper(db, SETTINGS).sweep_once()
    assert report.held_lock
    assert [(a.run_id, a.action, a.crash_cause) for a in report.actions] == [
        (dead, "crashed", "lease_expired")
    ]
    row = await db.get_run(dead)
    assert (row.status, row.finalization_path, row.finalized_by) == (
        RunStatus.CRASHED, FinalizationPath.CRASHED, FinalizedBy.SWEEPER,
    )  # fmt: skip
    assert row.crash_cause == "lease_expired"
    assert row.ended_at is not None and row.duration_ms is not None and row.duration_ms >= 1
    # Where it got to: the markers are kept and the message names them and the worker.
    assert row.last_started_block is not None and row.last_started_block.block_id == "second"
    assert row.last_completed_block is not None and row.last_completed_block.block_id == "first"
    assert row.error_block_id == "second"
    assert row.error_message is not None
    assert "worker remote-worker (pid 4242 on another-host)" in row.error_message
    assert "in block 'second' (function)" in row.error_message
    (note,) = row.notes
    assert (note["kind"], note["who"]) == ("crashed", "sweeper")
    assert note["by"] == f"{socket.gethostname()}:{os.getpid()}" and note["at"]
    assert note["evidence"]["lease_epoch"] == 1
    assert note["evidence"]["worker"]["host"] == "another-host"
    assert note["evidence"]["last_started_block"]["block_id"] == "second"

    assert (await db.get_run(alive)).status is RunStatus.RUNNING
    again = await Sweeper(db, SETTINGS).sweep_once()
    assert again.actions == () and again.found == 0


async def test_a_lease_renewed_or_retaken_after_the_scan_is_not_swept(
    db: SqlStore, db2: SqlStore
) -> None:
    renewed, retaken, moved = await running(db), await running(db), await running(db)
    await asyncio.sleep(2 * SHORT)
    now = utcnow()
    scan = await db.sweep_scan(now, now, 10)
    seen = {r.id: r for r in scan.lease_expired}
    assert {renewed, retaken, moved} <= set(seen)

    # Between the sweeper's read and its write, each run moves on in its own way.
    assert (await db2.renew_lease(renewed, 1, 30)).held
    await db2._fetch(
        "UPDATE workflow_execution_logs SET lease_epoch = 2 WHERE id = "
        + ("%(id)s" if db2.backend == "postgres" else ":id"),
        {"id": retaken},
    )
    later = StartedMarker("third", "Third", "function", utcnow())
    assert not await db2.write_progress(moved, ProgressWrite(started=later, epoch=1))

    for run_id in (renewed, retaken, moved):
        end = endings.crashed(seen[run_id], now, endings.LEASE_EXPIRED)
        assert not await db.end_run(run_id, end)
        row = await db.get_run(run_id)
        assert row.status is RunStatus.RUNNING and row.notes == []


async def test_reap_here_ends_only_runs_whose_process_is_gone(db: SqlStore) -> None:
    gone_worker = Worker(socket.gethostname(), dead_pid(), "gone-worker")
    gone = await running(db, gone_worker)
    live = await running(db, HERE)  # this very process: alive, but its lease expired
    remote = await running(db, ELSEWHERE)
    not_yet = await running(db, gone_worker, lease=30)
    await asyncio.sleep(2 * SHORT)

    report = await Sweeper(db, SETTINGS).reap_here()
    assert [(a.run_id, a.crash_cause) for a in report.actions] == [(gone, "process_gone")]
    row = await db.get_run(gone)
    assert (row.status, row.finalized_by, row.crash_cause) == (
        RunStatus.CRASHED, FinalizedBy.SWEEPER, "process_gone",
    )  # fmt: skip
    assert row.error_message is not None and "its process is gone" in row.error_message
    for run_id in (live, remote, not_yet):
        assert (await db.get_run(run_id)).status is RunStatus.RUNNING

    # The sweeper proper goes by the lease alone (a hung process looks the same).
    swept = await Sweeper(db, SETTINGS).sweep_once()
    assert {a.run_id for a in swept.actions} == {live, remote}
    assert {a.crash_cause for a in swept.actions} == {"lease_expired"}


async def test_an_overdue_cancel_is_forced(db: SqlStore) -> None:
    stuck = await running(db, lease=30)
    await db.request_cancel(stuck, "cli")
    report = await Sweeper(db, SETTINGS).sweep_once()
    assert report.actions == ()  # within the grace: its engine may still stop it
    await asyncio.sleep(SETTINGS.cancel_grace + 0.1)

    report = await Sweeper(db, SETTINGS).sweep_once()
    assert [(a.run_id, a.action) for a in report.actions] == [(stuck, "cancel_forced")]
    row = await db.get_run(stuck)
    assert (row.status, row.finalization_path, row.finalized_by) == (
        RunStatus.CANCELLED, FinalizationPath.CANCELLED, FinalizedBy.SWEEPER,
    )  # fmt: skip
    assert row.output == {"cancelled": True}
    assert row.last_started_block is not None and row.last_started_block.block_id == "second"
    (note,) = row.notes
    assert note["kind"] == "cancel_forced" and note["evidence"]["forced"] is True
    assert note["evidence"]["cancel_requested_by"] == "cli"
    # The engine, should it still live, is fenced off: its writes need ``running``.
    assert await db.write_progress(stuck, ProgressWrite(cost_total=1.0, epoch=1))
    assert not (await db.renew_lease(stuck, 1, 30)).held


async def test_a_dead_run_asked_to_cancel_ends_cancelled_not_crashed(db: SqlStore) -> None:
    run_id = await running(db, lease=SHORT)
    await db.request_cancel(run_id, "cli")
    await asyncio.sleep(2 * SHORT)
    report = await Sweeper(db, Settings(lease_seconds=30)).sweep_once()  # grace: 30 s
    assert [(a.run_id, a.action) for a in report.actions] == [(run_id, "cancel_forced")]
    row = await db.get_run(run_id)
    assert row.status is RunStatus.CANCELLED and row.crash_cause is None
    assert row.error_message is not None and "its lease expired" in row.error_message


async def test_a_queued_run_past_its_time_to_live_expires(db: SqlStore) -> None:
    old, fresh = await queued(db, 0.01), await queued(db, 60)
    await asyncio.sleep(0.05)
    report = await Sweeper(db, SETTINGS).sweep_once()
    assert [(a.run_id, a.action) for a in report.actions] == [(old, "expired")]
    row = await db.get_run(old)
    assert (row.status, row.finalization_path, row.finalized_by) == (
        RunStatus.FAILED, FinalizationPath.EXPIRED, FinalizedBy.SWEEPER,
    )  # fmt: skip
    assert row.error_message is not None and "not claimed by any worker" in row.error_message
    assert row.notes[0]["kind"] == "expired" and row.notes[0]["evidence"]["expires_at"]
    assert (await db.get_run(fresh)).status is RunStatus.QUEUED


async def test_two_sweepers_at_once_end_each_run_once(db: SqlStore, db2: SqlStore) -> None:
    runs = [await running(db) for _ in range(12)]
    await asyncio.sleep(2 * SHORT)
    first, second = await asyncio.gather(
        Sweeper(db, SETTINGS).sweep_once(), Sweeper(db2, SETTINGS).sweep_once()
    )
    ended = [a.run_id for a in (*first.actions, *second.actions)]
    assert sorted(ended) == sorted(runs)  # every run, each by one sweeper only
    for run_id in runs:
        row = await db.get_run(run_id)
        assert row.status is RunStatus.CRASHED and len(row.notes) == 1


@pytest.mark.parametrize(
    "store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_on_postgresql_a_pass_without_the_lock_does_nothing(
    db: SqlStore, db2: SqlStore
) -> None:
    run_id = await running(db)
    await asyncio.sleep(2 * SHORT)
    async with db2.sweeper_lock() as held:
        assert held
        report = await Sweeper(db, SETTINGS).sweep_once()
    assert not report.held_lock and report.actions == ()
    assert "another sweeper" in report.summary()
    assert (await db.get_run(run_id)).status is RunStatus.RUNNING
    report = await Sweeper(db, SETTINGS).sweep_once()  # released: the next pass acts
    assert [a.run_id for a in report.actions] == [run_id]


async def test_the_loop_sweeps_until_stopped(db: SqlStore) -> None:
    run_id = await running(db)
    stop = asyncio.Event()
    reports = []

    def seen(report: object) -> None:
        reports.append(report)
        if len(reports) >= 2:
            stop.set()

    settings = Settings(lease_seconds=30, sweep_seconds=0.05)
    await asyncio.wait_for(run_sweeper(db, settings, stop, seen), 10)
    assert len(reports) == 2
    assert (await db.get_run(run_id)).status is RunStatus.CRASHED


async def test_a_pass_reads_only_the_partial_indexes(db: SqlStore) -> None:
    """Terminal runs are never read: each scan of ``sweep_scan`` is an index scan (on
    SQLite, of the partial index of its kind, which holds only non-terminal rows);
    ``bench/sweep.py`` times it over 100,000 runs."""
    await db.put_snapshot("h", "wf", {"name": "wf"})
    old = "'2026-01-01T00:00:00.000000+00:00'"
    if db.backend == "postgres":
        rows = "SELECT 'r' || g AS n FROM generate_series(1, 20000) AS g"
        old = f"{old}::timestamptz"
    else:
        rows = (
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 20000) "
            "SELECT 'r' || n AS n FROM g"
        )
    await db._fetch(
        "INSERT INTO workflow_execution_logs (id, workflow_name, snapshot_hash, status, "
        '"trigger", started_at, updated_at, finalization_path, lease_expires_at, expires_at, '
        f"cancel_requested_at) SELECT n, 'wf', 'h', 'completed', 'cli', {old}, {old}, "
        f"'completed', {old}, {old}, {old} FROM ({rows}) AS numbers",
        {},
    )
    await db._fetch("ANALYZE", {})
    now = utcnow()
    params = {"now": db._ts(now), "cancel_before": db._ts(now), "limit": 500}
    if db.backend == "postgres":
        found = await db._fetch("EXPLAIN " + load_queries("postgres")["sweep_scan"], params)
        plan = "\n".join(r["QUERY PLAN"] for r in found)
        assert "Seq Scan" not in plan
        assert plan.count("Index Scan using workflow_execution_logs_") == 3, plan
    else:
        found = await db._fetch(
            "EXPLAIN QUERY PLAN " + load_queries("sqlite")["sweep_scan"], params
        )
        plan = "\n".join(r["detail"] for r in found)
        assert "SCAN workflow_execution_logs" not in plan
        for index in ("lease_idx", "cancel_idx", "expiry_idx"):
            assert f"workflow_execution_logs_{index}" in plan, plan
    assert await db.sweep_scan(now, now, 500) == SweepScan()  # terminal runs: none found


async def test_the_python_api_cancel_ends_a_run_whose_process_is_gone(db: SqlStore) -> None:
    import flowtrail

    run_id = await running(db, Worker(socket.gethostname(), dead_pid(), "gone"), lease=30)
    outcome = await flowtrail.cancel_async(run_id, settings=Settings(database_url=db.url))
    assert (outcome.status, outcome.requested, outcome.finalized) == (
        RunStatus.CANCELLED, True, True,
    )  # fmt: skip
    row = await db.get_run(run_id)
    assert (row.status, row.finalized_by) == (RunStatus.CANCELLED, FinalizedBy.API)
    assert row.notes[-1]["kind"] == "cancel_forced" and "was gone" in row.notes[-1]["why"]
