"""Leases and fencing (migration 0004), on both backends: a claim takes a new epoch, and
every write of an engine names its epoch, so one whose lease was taken away changes
nothing any more."""

from __future__ import annotations

from datetime import timedelta

from tests.contract.conftest import T0, Kit

from flowtrail.status import RunStatus
from flowtrail.store import NewRun, ProgressWrite, SqlStore, Worker, open_store
from flowtrail.store.blocking import BlockingStore
from flowtrail.store.common import utcnow
from flowtrail.store.migrate import apply_pending, discover

TS = "'2026-11-25T16:24:15.123456+00:00'"
W1, W2 = Worker("host-a", 101, "worker-a"), Worker("host-b", 202, "worker-b")


async def queued(kit: Kit, *, expires_in: float | None = None) -> str:
    await kit.store.put_snapshot("hash-wf", "wf", {"name": "wf"})
    run_id = f"q-{utcnow().timestamp()}"
    await kit.store.create_run(
        NewRun(
            run_id, "wf", "hash-wf", RunStatus.QUEUED, "queue", T0, {"n": 1},
            queue_name="flowtrail",
            expires_at=None if expires_in is None else utcnow() + timedelta(seconds=expires_in),
        )
    )  # fmt: skip
    return run_id


async def test_0004_upgrades_a_database_holding_older_rows(blank_store_url: str) -> None:
    async with open_store(blank_store_url) as store:
        older = [m for m in discover(store.backend) if m.version < "0004"]
        await apply_pending(store._migration_target(), older)
        await store.put_snapshot("h", "old", {"name": "old"})
        await store._fetch(
            "INSERT INTO workflow_execution_logs "
            '(id, workflow_name, snapshot_hash, status, "trigger", started_at, updated_at) '
            f"VALUES ('old-run', 'old', 'h', 'running', 'cli', {TS}, {TS})",
            {},
        )
        assert "0004_liveness" in await store.migrate()
        old = await store.get_run("old-run")
        assert (old.lease_epoch, old.lease_expires_at, old.attempt) == (0, None, 1)
        # An unfenced writer (epoch None) still reaches a row from before leases.
        assert not await store.write_progress("old-run", ProgressWrite(cost_total=1.0))
        assert (await store.get_run("old-run")).cost_total == 1.0


async def test_a_queued_run_is_claimed_once_under_a_new_epoch(store: SqlStore, kit: Kit) -> None:
    run_id = await queued(kit)
    row = await store.get_run(run_id)
    assert (row.status, row.lease_epoch, row.queue_name) == (RunStatus.QUEUED, 0, "flowtrail")
    assert row.queued_at is not None

    claimed = await store.claim(run_id, W1, 30)
    assert claimed is not None
    assert (claimed.status, claimed.lease_epoch, claimed.worker_id) == (
        RunStatus.RUNNING, 1, "worker-a",
    )  # fmt: skip
    assert claimed.lease_expires_at is not None
    assert claimed.lease_expires_at - claimed.claimed_at == timedelta(seconds=30)
    assert await store.claim(run_id, W2, 30) is None  # the same job delivered twice
    assert (await store.get_run(run_id)).worker_id == "worker-a"


async def test_an_expired_or_cancelled_queued_run_is_not_claimed(store: SqlStore, kit: Kit) -> None:
    expired = await queued(kit, expires_in=-1)
    assert await store.claim(expired, W1, 30) is None
    assert (await store.get_run(expired)).status is RunStatus.QUEUED  # the sweeper's to end
    asked = await queued(kit)
    await store._fetch(
        "UPDATE workflow_execution_logs SET cancel_requested_at = updated_at WHERE id = "
        + ("%(id)s" if store.backend == "postgres" else ":id"),
        {"id": asked},
    )
    assert await store.claim(asked, W1, 30) is None


async def test_a_fenced_engine_changes_nothing(store: SqlStore, kit: Kit) -> None:
    run_id = await queued(kit)
    first = await store.claim(run_id, W1, 30)
    assert first is not None and first.lease_epoch == 1
    # The lease is taken away: here by a second claim of the same run (a resume or a
    # reclaim does the same), simulated by moving the epoch on.
    await store._fetch(
        "UPDATE workflow_execution_logs SET lease_epoch = 2 WHERE id = "
        + ("%(id)s" if store.backend == "postgres" else ":id"),
        {"id": run_id},
    )
    stale = ProgressWrite(started=kit.started("b1", T0), epoch=1)
    assert await store.write_progress(run_id, stale)  # refused: the engine must stop
    assert (await store.get_run(run_id)).last_started_block is None
    assert not (await store.renew_lease(run_id, 1, 30)).held

    outcome = await store.finalize(run_id, kit.fin(RunStatus.COMPLETED, epoch=1, output=7))
    assert not outcome.persisted
    row = await store.get_run(run_id)
    assert row.status is RunStatus.RUNNING  # untouched: the epoch-2 engine owns it
    note = row.notes[-1]
    assert (note["kind"], note["epoch"], note["output"]) == ("late_result", 1, 7)

    current = ProgressWrite(started=kit.started("b2", T0), epoch=2)
    assert not await store.write_progress(run_id, current)
    assert (await store.finalize(run_id, kit.fin(RunStatus.COMPLETED, epoch=2))).persisted


async def test_renewing_extends_the_lease_and_reads_the_cancel_flag(
    store: SqlStore, kit: Kit
) -> None:
    run_id = await queued(kit)
    claimed = await store.claim(run_id, W1, 5)
    assert claimed is not None and claimed.lease_expires_at is not None
    since = utcnow() - timedelta(seconds=3)
    renewal = await store.renew_lease(run_id, 1, 120, loop_lag_ms=3000, loop_blocked_since=since)
    assert renewal.held and not renewal.cancel_requested
    row = await store.get_run(run_id)
    assert row.lease_expires_at is not None and row.heartbeat_at is not None
    assert row.lease_expires_at - row.heartbeat_at == timedelta(seconds=120)
    assert row.loop_lag_ms == 3000 and row.loop_blocked_since == since
    await store.request_cancel(run_id, "cli")
    assert (await store.renew_lease(run_id, 1, 120)).cancel_requested


async def test_the_blocking_connection_renews_like_the_store(store: SqlStore, kit: Kit) -> None:
    run_id = await queued(kit)
    assert await store.claim(run_id, W1, 5) is not None
    blocking = BlockingStore(store.url)
    try:
        assert blocking.renew_lease(run_id, 1, 90).held
        assert not blocking.renew_lease(run_id, 2, 90).held
    finally:
        blocking.close()
    row = await store.get_run(run_id)
    assert row.lease_expires_at is not None and row.heartbeat_at is not None
    assert row.lease_expires_at - row.heartbeat_at == timedelta(seconds=90)
