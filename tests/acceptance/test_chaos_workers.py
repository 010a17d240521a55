"""Chaos: 100 queued runs over two real workers, one of them SIGKILLed at random moments
and restarted, again and again. Afterwards every run is terminal and explained (none
lost, none left running or queued), and a retry of each crashed run completes without
re-running a step that had completed."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

import flowtrail
from flowtrail.model.compile import compile_file
from flowtrail.queue.submit import submit_run
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from flowtrail.store import open_store
from flowtrail.store.records import RunRecord, StepRecord
from tests.acceptance.clitools import Cli, write_workflow
from tests.acceptance.queuetools import POSTGRES_ONLY

pytestmark = POSTGRES_ONLY

RUNS, BLOCKS = 100, 4
BLOCKS_CODE = """
import time


def tagged(path, tag, seconds):
    with open(path, "a") as f:
        f.write(tag + "\\n")
    time.sleep(seconds)
    return tag
"""


def chain(folder: Path, marks: Path) -> Path:
    (folder / "chaos_blocks.py").write_text(BLOCKS_CODE)
    blocks = "\n".join(
        f'  b{i}: {{type: function, call: "chaos_blocks:tagged", '
        f'with: {{path: "{marks}", tag: "{{{{ run.id }}}}:b{i}", seconds: 0.15}}}}'
        for i in range(BLOCKS)
    )
    edges = "\n".join(["  - start -> b0"] + [f"  - b{i} -> b{i + 1}" for i in range(BLOCKS - 1)])
    text = f"name: chaos\nblocks:\n  start: {{type: start}}\n{blocks}\nconnections:\n{edges}\n"
    return write_workflow(folder, "chaos", text)


def statuses(url: str) -> Counter[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT status FROM workflow_execution_logs WHERE workflow_name = 'chaos'"
        ).fetchall()
    return Counter(r[0] for r in rows)


def executions(marks: Path) -> Counter[str]:
    return Counter(marks.read_text().split()) if marks.exists() else Counter()


async def submit_all(url: str, workflow: Path) -> list[str]:
    compiled = compile_file(workflow)
    settings = Settings(database_url=url)
    async with open_store(url) as store:
        return [(await submit_run(store, compiled, settings=settings)).id for _ in range(RUNS)]


def test_runs_survive_workers_killed_at_random(cli: Cli, tmp_path: Path) -> None:
    cli.env.update(FLOWTRAIL_LEASE_SECONDS="2", FLOWTRAIL_SWEEP_SECONDS="0.5")
    marks = tmp_path / "executions.txt"
    workflow = chain(tmp_path, marks)
    ids = asyncio.run(submit_all(cli.db, workflow))

    rng = random.Random(20261201)
    workers = [cli.start("worker", "--concurrency", "4") for _ in range(2)]
    kills = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            counts = statuses(cli.db)
            if counts["queued"] == 0 and counts["running"] == 0:
                break
            time.sleep(rng.uniform(0.8, 2.0))
            if kills < 8 and counts["completed"] < RUNS * 0.8:
                victim = rng.randrange(len(workers))
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].communicate(timeout=10)
                kills += 1
                workers[victim] = cli.start("worker", "--concurrency", "4")
        else:
            raise AssertionError(f"runs still going after the chaos: {statuses(cli.db)}")
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        for proc in workers:
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()

    assert kills >= 3
    records = asyncio.run(read_all(cli.db, ids))
    ended = Counter(r.status.value for r, _ in records.values())
    assert set(ended) <= {"completed", "crashed", "failed"}, ended  # none left going
    assert ended["crashed"] >= 1, "the kills interrupted no run"
    for record, _ in records.values():
        assert record.finalization_path is not None
        if record.status is RunStatus.CRASHED:  # explained: who ended it, why, where
            assert record.finalization_path.value == "crashed"
            assert record.finalized_by is not None
            assert record.finalized_by.value in {"sweeper", "reconciler"}, record
            assert record.crash_cause, record
            assert record.worker_id, record
        elif record.status is RunStatus.FAILED:
            # Its job was taken by a worker killed before it claimed the run: the
            # reconciler ended it, naming that worker, and nothing of it ever ran.
            assert record.finalized_by is not None
            assert record.finalized_by.value == "reconciler", record
            assert record.lease_epoch == 0 and record.last_started_block is None, record
            assert "worker" in (record.error_message or ""), record
        else:
            assert record.finalization_path.value == "completed"
            assert record.last_completed_block is not None
            assert record.last_completed_block.block_id == f"b{BLOCKS - 1}"
    ran = executions(marks)
    for run_id, (record, _) in records.items():
        if record.status is RunStatus.COMPLETED:  # each block ran exactly once
            assert all(ran[f"{run_id}:b{i}"] == 1 for i in range(BLOCKS)), run_id

    # A retry of each crashed run re-runs no step that had completed: the first through
    # the CLI, as a user would, the rest through the Python API (same code path).
    crashed = [run_id for run_id, (r, _) in records.items() if r.status is not RunStatus.COMPLETED]
    for n, run_id in enumerate(crashed):
        done_before = {s.block_id for s in records[run_id][1] if s.status == "completed"}
        if n == 0:
            result = cli.run("retry", run_id, "--json", timeout=60)
            assert result.returncode == 0, result.stderr
            retried: dict[str, Any] = json.loads(result.stdout)
            new_id, status = retried["id"], retried["status"]
            assert (retried["retry_of"], retried["attempt"]) == (run_id, 2)
        else:
            report = flowtrail.retry(run_id, settings=Settings.from_env(cli.env))
            new_id, status = report.run_id, report.status.value
        assert status == "completed", (run_id, status)
        ran = executions(marks)
        for i in range(BLOCKS):
            block = f"b{i}"
            again = ran[f"{new_id}:{block}"]
            assert again == (0 if block in done_before else 1), (run_id, block, done_before)


async def read_all(url: str, ids: list[str]) -> dict[str, tuple[RunRecord, list[StepRecord]]]:
    async with open_store(url) as store:
        return {run_id: (await store.get_run(run_id), await store.list_steps(run_id))
                for run_id in ids}  # fmt: skip
