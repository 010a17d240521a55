"""SQLite: a block running alone writes its progress on the event loop's thread; when
another connection holds the write lock, the write waits on the connection's thread
instead of failing; concurrent blocks still share writes."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from flowtrail.store import SqlStore
from flowtrail.store.sqlite import sqlite_path
from tests.integration.diagnostics.support import make_flow

CODE = """
import time

def step(x):
    return x

def nap(x):
    time.sleep(0.02)
    return x
"""


def chain(fn: str, n: int) -> dict[str, Any]:
    blocks: dict[str, Any] = {"start": {"type": "start"}}
    for i in range(n):
        blocks[f"b{i}"] = {"type": "function", "call": f"FNS:{fn}", "with": {"x": i}}
    edges = ["start -> b0"] + [f"b{i - 1} -> b{i}" for i in range(1, n)]
    return {"name": "on-loop", "blocks": blocks, "connections": edges}


def statement_threads(store: SqlStore) -> list[tuple[str, int]]:
    """(statement, thread ident) of every statement on the store's connection."""
    seen: list[tuple[str, int]] = []
    conn = store._db._conn  # type: ignore[attr-defined]
    conn.set_trace_callback(lambda sql: seen.append((sql, threading.get_ident())))
    return seen


@pytest.fixture
def sqlite_only(store_url: str) -> str:
    if not store_url.startswith("sqlite:"):
        pytest.skip("SQLite's progress path")
    return store_url


async def test_a_chain_writes_its_progress_on_the_loops_thread(
    sqlite_only: str, db: SqlStore, tmp_path: Path
) -> None:
    flow = make_flow(tmp_path / "wf", chain("step", 20), CODE)
    seen = statement_threads(db)
    report = await Runner(Settings(cancel_poll_seconds=60), db).run(flow.workflow)
    assert report.status is RunStatus.COMPLETED
    loop = threading.get_ident()
    progress = [ident for sql, ident in seen if "UPDATE workflow_execution_logs" in sql]
    assert len(progress) >= 20
    # every progress write but the terminal one ran here, on the event loop's thread
    assert sum(ident == loop for ident in progress) >= 20
    steps = await db.list_steps(report.run_id)
    assert sorted(s.block_id for s in steps if s.block_id != "start") == sorted(
        f"b{i}" for i in range(20)
    )


async def test_a_held_write_lock_makes_the_write_wait_not_fail(
    sqlite_only: str, db: SqlStore, tmp_path: Path
) -> None:
    flow = make_flow(tmp_path / "wf", chain("nap", 30), CODE)
    holder = sqlite3.connect(
        sqlite_path(sqlite_only), isolation_level=None, timeout=10, check_same_thread=False
    )
    seen = statement_threads(db)
    held = threading.Event()

    def hold() -> None:
        time.sleep(0.15)
        holder.execute("BEGIN IMMEDIATE")  # another process's writer, as far as we know
        held.set()
        time.sleep(0.3)
        holder.execute("COMMIT")

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        report = await Runner(Settings(cancel_poll_seconds=60), db).run(flow.workflow)
    finally:
        thread.join()
        holder.close()
    assert held.is_set()
    assert report.status is RunStatus.COMPLETED
    record = await db.get_run(report.run_id)
    assert record is not None and record.marker_write_failures in (0, None)
    assert record.last_completed_block is not None
    assert record.last_completed_block.block_id == "b29"
    loop = threading.get_ident()
    progress = {ident for sql, ident in seen if "UPDATE workflow_execution_logs" in sql}
    assert loop in progress and len(progress) == 2, "some writes waited on the other thread"


async def test_progress_on_loop_off_keeps_writes_on_the_connections_thread(
    sqlite_only: str, db: SqlStore, tmp_path: Path
) -> None:
    flow = make_flow(tmp_path / "wf", chain("step", 10), CODE)
    db.progress_on_loop = False  # type: ignore[attr-defined]
    seen = statement_threads(db)
    report = await Runner(Settings(cancel_poll_seconds=60), db).run(flow.workflow)
    assert report.status is RunStatus.COMPLETED
    loop = threading.get_ident()
    assert all(ident != loop for _, ident in seen)


# -- PostgreSQL: a blocking connection for a lone block's progress -------------------------


@pytest.fixture
def postgres_only(store_url: str) -> str:
    if store_url.startswith("sqlite:"):
        pytest.skip("PostgreSQL's progress path")
    return store_url


def progress_backends(url: str) -> list[int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'flowtrail-progress'"
            " AND datname = current_database()"
        ).fetchall()
    return [row[0] for row in rows]


async def test_a_chain_writes_its_progress_through_the_blocking_connection(
    postgres_only: str, db: SqlStore, tmp_path: Path
) -> None:
    flow = make_flow(tmp_path / "wf", chain("step", 20), CODE)
    report = await Runner(Settings(cancel_poll_seconds=60), db).run(flow.workflow)
    assert report.status is RunStatus.COMPLETED
    assert progress_backends(postgres_only), "the progress connection is open"
    record = await db.get_run(report.run_id)
    assert record is not None and record.last_completed_block is not None
    assert record.last_completed_block.block_id == "b19"
    steps = await db.list_steps(report.run_id)
    assert sorted(s.block_id for s in steps if s.block_id != "start") == sorted(
        f"b{i}" for i in range(20)
    )
    await db.close()
    assert not progress_backends(postgres_only), "closing the store closes it too"


async def test_a_killed_progress_connection_costs_no_write(
    postgres_only: str, db: SqlStore, tmp_path: Path
) -> None:
    import psycopg

    flow = make_flow(tmp_path / "wf", chain("nap", 40), CODE)
    killed: list[int] = []

    def kill_it() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not killed:
            pids = progress_backends(postgres_only)
            if pids:
                with psycopg.connect(postgres_only, autocommit=True) as conn:
                    conn.execute("SELECT pg_terminate_backend(%s)", (pids[0],))
                killed.append(pids[0])
            time.sleep(0.05)

    thread = threading.Thread(target=kill_it)
    thread.start()
    try:
        report = await Runner(Settings(cancel_poll_seconds=60), db).run(flow.workflow)
    finally:
        thread.join()
    assert killed, "the progress connection was terminated mid-run"
    assert report.status is RunStatus.COMPLETED
    record = await db.get_run(report.run_id)
    assert record is not None and record.marker_write_failures in (0, None)
    assert record.last_completed_block is not None
    assert record.last_completed_block.block_id == "b39"
    steps = await db.list_steps(report.run_id)
    assert len([s for s in steps if s.block_id != "start"]) == 40
    # a new progress connection took over once the old one was gone
    assert set(progress_backends(postgres_only)) - set(killed)
