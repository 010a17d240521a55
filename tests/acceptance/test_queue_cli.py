"""``run --queue`` and ``worker`` as a user meets them before any run executes: refused
with exit 2 on SQLite (naming PostgreSQL), flags that only make sense together, and a
queued run no worker claimed in time ending ``failed``/``expired`` without running."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
import pytest

from tests.acceptance.clitools import Cli, write_workflow
from tests.acceptance.queuetools import (
    POSTGRES_ONLY,
    QUEUE_BLOCKS,
    enqueue,
    wait_for_status,
    worker,
)

QUICK = """
name: quick
blocks:
  start: {type: start}
  q: {type: function, call: "acc_blocks:quick"}
connections: [start -> q]
"""

SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@SQLITE_ONLY
def test_sqlite_refuses_queued_runs_and_workers(cli: Cli, tmp_path: Path) -> None:
    workflow = write_workflow(tmp_path, "quick", QUICK)
    queued = cli.run("run", str(workflow), "--queue", "--json")
    assert queued.returncode == 2
    assert "PostgreSQL" in json.loads(queued.stdout)["error"]["message"]
    assert cli.runs() == []  # nothing was written
    started = cli.run("worker")
    assert started.returncode == 2
    assert "PostgreSQL" in started.stderr


@SQLITE_ONLY
def test_queue_only_flags_need_queue(cli: Cli, tmp_path: Path) -> None:
    workflow = write_workflow(tmp_path, "quick", QUICK)
    for flags in (["--wait"], ["--expires-in", "5"], ["--queue-name", "x"]):
        result = cli.run("run", str(workflow), *flags)
        assert result.returncode == 2, flags
        assert "goes with --queue" in result.stderr
    for flags in (["--no-record"], ["--timeout", "5"]):
        result = cli.run("run", str(workflow), "--queue", *flags)
        assert result.returncode == 2, flags
        assert flags[0] in result.stderr


@POSTGRES_ONLY
def test_a_run_no_worker_claimed_in_time_expires_without_running(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "queue_blocks.py").write_text(QUEUE_BLOCKS)
    marks = tmp_path / "expired.marks"
    workflow = write_workflow(
        tmp_path,
        "late",
        f"""
        name: late
        blocks:
          start: {{type: start}}
          mark: {{type: function, call: "queue_blocks:mark", with: {{path: "{marks}"}}}}
        connections: [start -> mark]
        """,
    )
    record = enqueue(cli, workflow, "--expires-in", "0.2")
    time.sleep(0.5)
    with worker(cli):
        ended = wait_for_status(cli, record["id"], {"failed", "completed"})
    assert (ended["status"], ended["finalization_path"]) == ("failed", "expired")
    assert not marks.exists()


@POSTGRES_ONLY
def test_a_run_whose_job_cannot_be_deferred_does_not_stay_queued(
    cli: Cli, tmp_path: Path
) -> None:
    with psycopg.connect(cli.db, autocommit=True) as conn:  # the queue refuses new jobs
        conn.execute(
            "CREATE FUNCTION refuse_jobs() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'the queue is closed'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON procrastinate_jobs "
            "FOR EACH ROW EXECUTE FUNCTION refuse_jobs()"
        )
    workflow = write_workflow(tmp_path, "quick", QUICK)
    result = cli.run("run", str(workflow), "--queue", "--json")
    assert result.returncode == 5
    assert "could not be queued" in json.loads(result.stdout)["error"]["message"]
    (run,) = cli.runs()
    assert run["status"] == "failed"
    assert "the queue is closed" in run["completion_failure"]
