"""Queued runs as a user drives them: ``flowtrail run --queue`` and real ``flowtrail
worker`` subprocesses on a real PostgreSQL database."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.acceptance.clitools import Cli

POSTGRES_ONLY = pytest.mark.parametrize(
    "store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)

# Side effects a test counts: each call appends one line to the file it is given.
QUEUE_BLOCKS = """
import time


def mark(path, seconds=0.0):
    with open(path, "a") as f:
        f.write("ran\\n")
    time.sleep(seconds)
    return "marked"


def fail(why="no"):
    raise ValueError(why)
"""


def enqueue(cli: Cli, workflow: Path, *args: str) -> dict[str, Any]:
    result = cli.run("run", str(workflow), "--queue", "--json", *args)
    assert result.returncode == 0, result.stderr
    record: dict[str, Any] = json.loads(result.stdout)
    assert record["status"] == "queued"
    return record


def wait_for_status(
    cli: Cli, run_id: str, statuses: set[str], timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = cli.show(run_id)
        if record["status"] in statuses:
            return record
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never reached {statuses}: {cli.show(run_id)}")


def wait_for_block(cli: Cli, run_id: str, block_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        marker = cli.show(run_id)["last_started_block"]
        if marker and marker["block_id"] == block_id:
            return
        time.sleep(0.1)
    raise AssertionError(f"block {block_id} of run {run_id} never started")


def job_statuses(url: str, run_id: str) -> list[str]:
    """The Procrastinate jobs deferred for one run, oldest first."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT status::text FROM procrastinate_jobs WHERE args->>'run_id' = %s ORDER BY id",
            (run_id,),
        ).fetchall()
    return [r[0] for r in rows]


def wait_for_jobs(
    url: str, run_id: str, statuses: set[str], count: int, timeout: float = 30
) -> list[str]:
    """The statuses of the run's jobs once ``count`` of them are in ``statuses``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = job_statuses(url, run_id)
        if sum(s in statuses for s in found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"the jobs of run {run_id} are {job_statuses(url, run_id)}")


@contextmanager
def worker(cli: Cli, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A ``flowtrail worker`` for the body of the ``with``; stopped (SIGTERM) after it."""
    proc = cli.start("worker", *args)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
