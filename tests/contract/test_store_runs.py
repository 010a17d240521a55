"""Snapshots, creating and reading runs, URLs and connection failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from flowtrail.errors import RunNotFoundError, StoreError, StoreUnavailableError
from flowtrail.status import RunStatus
from flowtrail.store import NewRun, ProgressWrite, RunFilter, open_store
from flowtrail.store.postgres import PostgresStore
from flowtrail.store.sqlite import SqliteStore, sqlite_path


async def test_snapshot_is_stored_once_per_hash(store) -> None:
    await store.put_snapshot("h1", "wf", {"blocks": [1, 2]})
    await store.put_snapshot("h1", "wf", {"blocks": "changed"})
    assert await store.get_snapshot("h1") == {"blocks": [1, 2]}
    assert await store.get_snapshot("nope") is None


async def test_snapshot_must_be_json(store) -> None:
    with pytest.raises(StoreError, match="definition is not JSON-encodable"):
        await store.put_snapshot("h2", "wf", {"blocks": {1, 2}})
    assert await store.get_snapshot("h2") is None


async def test_create_and_get_round_trips_every_field(store, kit) -> None:
    t0, at = kit.at(0), kit.at
    await store.put_snapshot("h", "wf", {})
    plus_two = timezone(timedelta(hours=2))
    await store.create_run(
        NewRun(
            id="r1",
            workflow_name="wf",
            snapshot_hash="h",
            status=RunStatus.QUEUED,
            trigger="cron",
            started_at=t0.astimezone(plus_two),
            input={"text": "héllo", "n": [1, 2.5, None, True]},
            deadline_at=at(3600),
            parent_run_id="parent",
        )
    )
    run = await store.get_run("r1")
    assert (run.id, run.workflow_name, run.snapshot_hash) == ("r1", "wf", "h")
    assert (run.status, run.trigger, run.level) == (RunStatus.QUEUED, "cron", "info")
    assert run.started_at == t0 and run.started_at.tzinfo is UTC
    assert run.deadline_at == at(3600) and run.deadline_at.tzinfo is UTC
    assert run.input == {"text": "héllo", "n": [1, 2.5, None, True]}
    assert run.parent_run_id == "parent"
    assert run.ended_at is None and run.duration_ms is None and run.output is None
    assert run.last_started_block is None and run.last_completed_block is None
    assert (run.cost_total, run.tokens_total, run.marker_write_failures) == (0.0, 0, 0)
    assert (run.models, run.notes, run.pause_state) == ([], [], None)
    assert run.has_trace_spans is False and run.trace_span_count == 0
    assert run.cancel_requested_at is None and run.cancel_requested_by is None
    assert run.updated_at is not None and run.updated_at.tzinfo is UTC


async def test_duplicate_run_id_is_a_store_error(store, kit) -> None:
    run_id = await kit.run()
    with pytest.raises(StoreError) as info:
        await kit.run(run_id=run_id)
    assert not isinstance(info.value, RunNotFoundError)


async def test_naive_datetimes_are_refused(store, kit) -> None:
    with pytest.raises(StoreError, match="naive datetime"):
        await kit.run(started_at=datetime(2026, 1, 1))


async def test_list_runs_newest_first_with_filters(store, kit) -> None:
    at = kit.at
    a = await kit.run(started_at=at(1), workflow="alpha")
    b = await kit.run(RunStatus.QUEUED, started_at=at(3), workflow="beta")
    c = await kit.run(started_at=at(2), workflow="alpha")
    assert [r.id for r in await store.list_runs(RunFilter())] == [b, c, a]
    assert [r.id for r in await store.list_runs(RunFilter(limit=2))] == [b, c]
    alpha = await store.list_runs(RunFilter(workflow_name="alpha"))
    assert [r.id for r in alpha] == [c, a]
    assert [r.id for r in await store.list_runs(RunFilter(status=RunStatus.QUEUED))] == [b]
    both = RunFilter(status=RunStatus.RUNNING, workflow_name="beta")
    assert await store.list_runs(both) == []


async def test_unknown_run_ids(store, kit) -> None:
    fin = kit.fin(RunStatus.COMPLETED)
    for call in (
        store.get_run("ghost"),
        store.finalize("ghost", fin),
        store.request_cancel("ghost", "api"),
        store.cancel_requested("ghost"),
        store.claim_resume("ghost"),
    ):
        with pytest.raises(RunNotFoundError, match="ghost"):
            await call
    # a progress write for a run that is not running tells the engine to stop
    assert await store.write_progress("ghost", ProgressWrite(cost_total=1.0)) is True


async def test_round_trips_are_counted(store, kit) -> None:
    run_id = await kit.run()
    before = store.round_trips
    await store.get_run(run_id)
    await store.cancel_requested(run_id)
    assert store.round_trips - before == 2


def test_open_store_picks_the_backend_without_connecting(tmp_path: Path) -> None:
    assert isinstance(open_store(f"sqlite:///{tmp_path}/x/y.db"), SqliteStore)
    assert not (tmp_path / "x").exists()
    assert isinstance(open_store("postgresql://u:pw@127.0.0.1:1/db"), PostgresStore)
    assert isinstance(open_store("postgres://u@127.0.0.1:1/db"), PostgresStore)
    for bad in ("mysql://u:secret@h/db", "flowtrail.db", "sqlite:relative.db"):
        with pytest.raises(StoreError, match="unsupported store URL") as info:
            open_store(bad)
        assert "secret" not in str(info.value)


def test_sqlite_url_forms() -> None:
    assert sqlite_path("sqlite:///data/runs.db") == "data/runs.db"
    assert sqlite_path("sqlite:////var/lib/runs.db") == "/var/lib/runs.db"
    for bad in ("sqlite://host/runs.db", "sqlite:///", "sqlite:///x.db?mode=ro"):
        with pytest.raises(StoreError):
            sqlite_path(bad)


async def test_sqlite_relative_path_creates_parent_dirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with open_store("sqlite:///deep/er/runs.db") as store:
        assert await store.migrate()
    assert (tmp_path / "deep" / "er" / "runs.db").is_file()


async def test_sqlite_unusable_path_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    store = open_store(f"sqlite:///{tmp_path}/file/runs.db")
    with pytest.raises(StoreUnavailableError, match=r"runs\.db"):
        await store.open()


async def test_unreachable_postgres_is_unavailable_and_the_password_is_hidden() -> None:
    store = open_store("postgresql://flowtrail:hunter2@127.0.0.1:1/flowtrail")
    with pytest.raises(StoreUnavailableError) as info:
        await store.open()
    message = str(info.value)
    assert "127.0.0.1:1" in message and "hunter2" not in message
    assert isinstance(info.value.__cause__, Exception)


async def test_calls_before_open_are_store_errors(store_url: str) -> None:
    store = open_store(store_url)
    with pytest.raises(StoreError, match="not open"):
        await store.get_run("x")


async def test_driver_errors_are_wrapped(store, kit) -> None:
    run_id = await kit.run()
    fin = kit.fin(RunStatus.COMPLETED, duration_ms=2**70)  # no 64-bit column holds it
    with pytest.raises(StoreError) as info:
        await store.finalize(run_id, fin)
    assert info.value.__cause__ is not None
    assert (await store.get_run(run_id)).status is RunStatus.RUNNING


@pytest.mark.parametrize(
    "store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_postgres_replaces_a_broken_connection(store, kit) -> None:
    run_id = await kit.run()
    pid = store._conn.info.backend_pid
    async with await psycopg.AsyncConnection.connect(store.url, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    with pytest.raises(StoreUnavailableError):
        await store.get_run(run_id)
    assert (await store.get_run(run_id)).id == run_id
