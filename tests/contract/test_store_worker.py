"""Migration 0002 (who executes a run), applied to a database that already holds 0001 rows,
and the worker columns as the store writes and returns them, on both backends."""

from __future__ import annotations

from tests.contract.conftest import T0, Kit

from flowtrail.status import RunStatus
from flowtrail.store import NewRun, Worker, open_store
from flowtrail.store.migrate import apply_pending, discover

TS = "'2026-11-25T16:24:15.123456+00:00'"  # read alike as text (SQLite) and timestamptz


async def test_0002_upgrades_a_database_holding_0001_rows(blank_store_url: str) -> None:
    async with open_store(blank_store_url) as store:
        first = discover(store.backend)[:1]
        assert [m.version for m in first] == ["0001_initial"]
        await apply_pending(store._migration_target(), first)
        await store.put_snapshot("h", "old", {"name": "old"})
        # A row written by a flowtrail that knew only 0001: no worker columns exist.
        await store._fetch(
            "INSERT INTO workflow_execution_logs "
            '(id, workflow_name, snapshot_hash, status, "trigger", started_at, updated_at) '
            f"VALUES ('old-run', 'old', 'h', 'running', 'cli', {TS}, {TS})",
            {},
        )
        later = [m.version for m in discover(store.backend)[1:]]
        assert later[0] == "0002_worker"
        assert await store.pending_migrations() == later

        assert await store.migrate() == later
        old = await store.get_run("old-run")
        assert old.status is RunStatus.RUNNING
        assert (old.worker_host, old.worker_pid, old.claimed_at) == (None, None, None)
        outcome = await store.request_cancel("old-run", "cli")
        assert outcome.requested and outcome.worker is None

        await store.create_run(
            NewRun(
                "new-run", "old", "h", RunStatus.RUNNING, "cli", T0, None, worker=Worker("h1", 42)
            )
        )
        new = await store.get_run("new-run")
        assert (new.worker_host, new.worker_pid) == ("h1", 42)
        assert new.claimed_at is not None


async def test_worker_is_recorded_and_moves_with_a_resume(store, kit: Kit) -> None:
    run_id = await kit.run(RunStatus.PAUSED)
    assert (await store.get_run(run_id)).worker_host is None
    await store.claim_resume(run_id, Worker("resumer", 4242))
    row = await store.get_run(run_id)
    assert (row.worker_host, row.worker_pid) == ("resumer", 4242)
    assert row.claimed_at is not None
    outcome = await store.request_cancel(run_id, "cli")
    assert outcome.requested and not outcome.finalized
    assert outcome.worker == Worker("resumer", 4242)
    await store.finalize(run_id, kit.fin(RunStatus.CANCELLED))
    ended = await store.request_cancel(run_id, "cli")
    assert not ended.requested and ended.status is RunStatus.CANCELLED
    assert ended.worker == Worker("resumer", 4242)
