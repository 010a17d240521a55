"""Every worker sweeps: a worker killed mid-block leaves its run to the sweeper of another
worker, which ends it ``crashed`` (explained) within lease + sweep, and then stops the
dead worker's queue job. Real ``flowtrail worker`` processes, real PostgreSQL; the run is
watched through the database directly, since every ``flowtrail`` command would itself end
a run of this host whose process is gone."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tests.acceptance.clitools import Cli, write_workflow
from tests.acceptance.queuetools import POSTGRES_ONLY, QUEUE_BLOCKS, enqueue, worker

pytestmark = POSTGRES_ONLY

LEASE, SWEEP = 2.0, 0.5


def read(url: str, sql: str, *params: Any) -> dict[str, Any]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row


def wait_until(url: str, sql: str, *params: Any, timeout: float = 30) -> dict[str, Any]:
    """Poll a one-row query until its ``done`` column is true."""
    deadline = time.monotonic() + timeout
    while True:
        row = read(url, sql, *params)
        if row["done"] or time.monotonic() > deadline:
            return row
        time.sleep(0.1)


def test_a_killed_workers_run_is_swept_by_another_worker(cli: Cli, tmp_path: Path) -> None:
    cli.env.update(FLOWTRAIL_LEASE_SECONDS=str(LEASE), FLOWTRAIL_SWEEP_SECONDS=str(SWEEP))
    (tmp_path / "queue_blocks.py").write_text(QUEUE_BLOCKS)
    workflow = write_workflow(
        tmp_path,
        "orphaned",
        f"""
        name: orphaned
        blocks:
          start: {{type: start}}
          mark: {{type: function, call: "queue_blocks:mark",
                  with: {{path: "{tmp_path / "marks"}", seconds: 60}}}}
        connections: [start -> mark]
        """,
    )
    run_id = enqueue(cli, workflow)["id"]
    first = cli.start("worker")
    try:
        started = wait_until(
            cli.db,
            "SELECT last_started_block_id = 'mark' AS done, job_id "
            "FROM workflow_execution_logs WHERE id = %s",
            run_id,
        )
        assert started["done"], "the block never started"
    finally:
        first.kill()
        first.communicate(timeout=10)

    with worker(cli) as second:
        ended = wait_until(
            cli.db,
            "SELECT status <> 'running' AS done, * FROM workflow_execution_logs WHERE id = %s",
            run_id,
        )
        job = wait_until(
            cli.db,
            "SELECT abort_requested AS done, status::text FROM procrastinate_jobs WHERE id = %s",
            started["job_id"],
            timeout=4 * LEASE + 10,
        )
        second_pid = second.pid
    assert (ended["status"], ended["finalized_by"]) == ("crashed", "sweeper")
    assert ended["crash_cause"] == "process_gone"  # the same host: known dead
    assert ended["worker_pid"] == first.pid
    assert ended["last_started_block_id"] == "mark"
    assert f"pid {first.pid} on " in ended["error_message"]
    crashed = next(n for n in ended["notes"] if n["kind"] == "crashed")
    assert crashed["by"] == f"{socket.gethostname()}:{second_pid}"  # the second worker

    # The dead worker's job was still "doing": the reconciler asked it to abort.
    assert job == {"done": True, "status": "doing"}
    notes = read(cli.db, "SELECT notes FROM workflow_execution_logs WHERE id = %s", run_id)
    assert [n["kind"] for n in notes["notes"]][-1] == "job_abort_requested"


ONCE_SLOW = """
import os
import time


def once_slow(path):
    if os.path.exists(path):
        return "second time"
    open(path, "w").close()
    time.sleep(60)
"""


def test_a_swept_run_with_recovery_is_retried_by_the_workers(cli: Cli, tmp_path: Path) -> None:
    cli.env.update(FLOWTRAIL_LEASE_SECONDS=str(LEASE), FLOWTRAIL_SWEEP_SECONDS=str(SWEEP))
    (tmp_path / "once_blocks.py").write_text(ONCE_SLOW)
    workflow = write_workflow(
        tmp_path,
        "recovering",
        f"""
        name: recovering
        recovery: {{attempts: 2, backoff_seconds: 0}}
        blocks:
          start: {{type: start}}
          work: {{type: function, call: "once_blocks:once_slow",
                  with: {{path: "{tmp_path / "tried"}"}}}}
        connections: [start -> work]
        """,
    )
    run_id = enqueue(cli, workflow)["id"]
    first = cli.start("worker")
    try:
        assert wait_until(
            cli.db,
            "SELECT last_started_block_id = 'work' AS done "
            "FROM workflow_execution_logs WHERE id = %s",
            run_id,
        )["done"], "the block never started"
    finally:
        first.kill()
        first.communicate(timeout=10)

    with worker(cli):
        retried = wait_until(
            cli.db,
            "SELECT retried_by IS NOT NULL AS done, status, retried_by "
            "FROM workflow_execution_logs WHERE id = %s",
            run_id,
        )
        assert retried["done"], "the swept run was not retried"
        second = wait_until(
            cli.db,
            "SELECT status IN ('completed', 'failed', 'crashed') AS done, status, attempt, "
            "retry_of, output FROM workflow_execution_logs WHERE id = %s",
            retried["retried_by"],
        )
    assert retried["status"] == "crashed"  # the swept attempt stays crashed, explained
    assert (second["status"], second["attempt"], second["retry_of"]) == ("completed", 2, run_id)
    assert second["output"] == {"result": "second time"}
