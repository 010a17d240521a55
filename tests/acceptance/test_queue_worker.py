"""Queued runs end to end: ``flowtrail run --queue`` writes the run ``queued`` and exits;
a real ``flowtrail worker`` subprocess executes it with the full record; ``--wait``
exits like ``run``; one run is executed once however many jobs name it; a stopping
worker hands its runs back; what a worker runs is what was submitted."""

from __future__ import annotations

import asyncio
import json
import signal
import textwrap
from pathlib import Path

from flowtrail.queue.app import make_app
from flowtrail.queue.defaults import TASK_NAME
from tests.acceptance.clitools import Cli, write_workflow
from tests.acceptance.queuetools import (
    POSTGRES_ONLY,
    QUEUE_BLOCKS,
    enqueue,
    job_statuses,
    wait_for_block,
    wait_for_jobs,
    wait_for_status,
    worker,
)

pytestmark = POSTGRES_ONLY


def _marking(folder: Path, name: str, seconds: float = 0.0) -> tuple[Path, Path]:
    (folder / "queue_blocks.py").write_text(QUEUE_BLOCKS)
    marks = folder / f"{name}.marks"
    workflow = write_workflow(
        folder,
        name,
        f"""
        name: {name}
        blocks:
          start: {{type: start}}
          mark: {{type: function, call: "queue_blocks:mark",
                  with: {{path: "{marks}", seconds: {seconds}}}}}
          done: {{type: response, output: {{said: "{{{{ mark.result }}}}"}}}}
        connections: [start -> mark, mark -> done]
        """,
    )
    return workflow, marks


def test_a_queued_run_is_executed_by_a_worker_with_its_full_record(
    cli: Cli, tmp_path: Path
) -> None:
    workflow, marks = _marking(tmp_path, "queued_ok")
    record = enqueue(cli, workflow)
    assert not marks.exists()  # queued: nothing ran in the enqueuing process
    with worker(cli):
        done = wait_for_status(cli, record["id"], {"completed", "failed", "crashed"})
    assert done["status"] == "completed"
    assert done["finalization_path"] == "completed"
    assert done["output"] == {"said": "marked"}
    assert done["last_completed_block"]["block_id"] == "done"
    assert done["trace_span_count"] >= 3
    assert done["worker_pid"] is not None
    assert done["lease_epoch"] == 1
    assert done["queue_name"] == "flowtrail"
    assert marks.read_text() == "ran\n"
    assert job_statuses(cli.db, record["id"]) == ["succeeded"]
    assert done["job_id"] is not None


def test_wait_follows_the_run_and_exits_like_run(cli: Cli, tmp_path: Path) -> None:
    ok, _ = _marking(tmp_path, "wait_ok")
    (tmp_path / "queue_blocks.py").write_text(QUEUE_BLOCKS)
    failing = write_workflow(
        tmp_path,
        "wait_fail",
        """
        name: wait_fail
        blocks:
          start: {type: start}
          boom: {type: function, call: "queue_blocks:fail", with: {why: "on purpose"}}
        connections: [start -> boom]
        """,
    )
    with worker(cli, "--concurrency", "2"):
        passed = cli.run("run", str(ok), "--queue", "--wait", "--json")
        failed = cli.run("run", str(failing), "--queue", "--wait", "--json")
    assert passed.returncode == 0, passed.stderr
    assert json.loads(passed.stdout)["status"] == "completed"
    assert failed.returncode == 1, failed.stderr
    data = json.loads(failed.stdout)
    assert data["status"] == "failed"
    assert "on purpose" in data["error"]["message"]


def test_one_run_named_by_two_jobs_executes_once(cli: Cli, tmp_path: Path) -> None:
    workflow, marks = _marking(tmp_path, "twice", seconds=0.5)
    record = enqueue(cli, workflow)

    async def defer_again() -> None:  # the same job delivered a second time
        async with make_app(cli.db, pooled=False).open_async() as app:
            await app.configure_task(TASK_NAME).defer_async(run_id=record["id"])

    asyncio.run(defer_again())
    with worker(cli, "--concurrency", "2"):
        wait_for_status(cli, record["id"], {"completed"})
        jobs = wait_for_jobs(cli.db, record["id"], {"succeeded", "failed"}, count=2)
    assert jobs == ["succeeded", "succeeded"]  # both deliveries were taken...
    assert marks.read_text() == "ran\n"  # ...and the blocks ran once


def test_sigterm_lets_a_run_finish_within_the_grace(cli: Cli, tmp_path: Path) -> None:
    workflow, marks = _marking(tmp_path, "graceful", seconds=1.5)
    record = enqueue(cli, workflow)
    with worker(cli, "--grace", "30") as proc:
        wait_for_block(cli, record["id"], "mark")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    done = cli.show(record["id"])
    assert done["status"] == "completed"
    assert marks.read_text() == "ran\n"


def test_sigterm_hands_back_a_run_that_outlasts_the_grace(cli: Cli, tmp_path: Path) -> None:
    workflow, _ = _marking(tmp_path, "handed_back", seconds=30)
    record = enqueue(cli, workflow)
    with worker(cli, "--grace", "0.5") as proc:
        wait_for_block(cli, record["id"], "mark")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    ended = cli.show(record["id"])
    assert ended["status"] == "crashed"
    assert ended["finalization_path"] == "crashed"
    assert ended["crash_cause"] == "worker_shutdown"
    assert "worker_shutdown" in ended["error"]["message"]
    assert ended["last_started_block"]["block_id"] == "mark"
    assert ended["worker_id"] is not None  # who held it


def test_a_second_signal_hands_back_at_once(cli: Cli, tmp_path: Path) -> None:
    workflow, _ = _marking(tmp_path, "second_signal", seconds=30)
    record = enqueue(cli, workflow)
    with worker(cli, "--grace", "60") as proc:
        wait_for_block(cli, record["id"], "mark")
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)  # far less than the grace
    ended = cli.show(record["id"])
    assert (ended["status"], ended["crash_cause"]) == ("crashed", "worker_shutdown")


def test_the_worker_runs_the_submitted_child_workflow(cli: Cli, tmp_path: Path) -> None:
    child = tmp_path / "child.yaml"
    child.write_text(
        textwrap.dedent(
            """
            name: child
            blocks:
              start: {type: start}
              out: {type: response, output: {version: "submitted"}}
            connections: [start -> out]
            """
        )
    )
    parent = write_workflow(
        tmp_path,
        "parent",
        """
        name: parent
        blocks:
          start: {type: start}
          call: {type: workflow, path: child.yaml}
          done: {type: response, output: "{{ call.version }}"}
        connections: [start -> call, call -> done]
        """,
    )
    record = enqueue(cli, parent)
    child.write_text(child.read_text().replace("submitted", "edited later"))
    with worker(cli):
        done = wait_for_status(cli, record["id"], {"completed", "failed", "crashed"})
    assert done["status"] == "completed", done["error"]
    assert done["output"] == "submitted"


def test_a_function_module_the_worker_cannot_import_fails_the_run_clearly(
    cli: Cli, tmp_path: Path
) -> None:
    workflow, _ = _marking(tmp_path, "unimportable")
    record = enqueue(cli, workflow)
    (tmp_path / "queue_blocks.py").unlink()  # not importable where the worker runs
    with worker(cli):
        done = wait_for_status(cli, record["id"], {"completed", "failed", "crashed"})
    assert done["status"] == "failed"
    message = done["error"]["message"]
    assert "queue_blocks" in message
    assert "importable on the worker" in message
