"""A run whose process dies, hangs or is stopped still ends explained, as a user sees it
through the CLI: real ``flowtrail`` processes, real signals, a 2 s lease."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.clitools import Cli, started, write_workflow
from tests.acceptance.test_crash_markers import SLEEPER

LEASE, SWEEP = 2.0, 0.5

HOG = """
name: hog
blocks:
  start: {type: start}
  hog: {type: function, call: "acc_blocks:hog", with: {seconds: 6}}
connections: [start -> hog]
"""
HOG_CODE = """

async def hog(seconds):
    time.sleep(seconds)  # CPU-bound async code: the event loop is blocked throughout
    return "done"
"""


@pytest.fixture
def short(cli: Cli) -> Cli:
    """The CLI with a short lease and sweep interval."""
    cli.env.update(FLOWTRAIL_LEASE_SECONDS=str(LEASE), FLOWTRAIL_SWEEP_SECONDS=str(SWEEP))
    return cli


def start_sleeper(
    cli: Cli, tmp_path: Path, name: str
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    wf = write_workflow(tmp_path, name, SLEEPER.format(name=name, fn="slow"))
    proc = cli.start("run", str(wf), "--quiet", "--json")
    try:
        row = cli.wait_for(started("second"), name)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    return proc, row


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL


def wait_past_lease(cli: Cli, run_id: str) -> None:
    """Sleep (running no command: every command reaps) until the run's lease is over."""
    expires = datetime.fromisoformat(str(cli.show(run_id)["lease_expires_at"]))
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.3)


def assert_explained_crash(record: dict[str, Any], cause: str, pid: int) -> None:
    assert record["status"] == "crashed"
    assert record["finalization_path"] == "crashed"
    assert record["finalized_by"] == "sweeper"
    assert record["crash_cause"] == cause
    assert record["last_started_block"]["block_id"] == "second"  # where it got to: kept
    assert record["last_completed_block"]["block_id"] == "first"
    assert record["error"]["block_id"] == "second"
    said = record["error"]["message"]
    assert f"pid {pid} on " in said and "in block 'second' (function)" in said
    crash = [n for n in record["notes"] if n["kind"] == "crashed"]
    assert len(crash) == 1 and crash[0]["who"] == "sweeper"
    assert crash[0]["evidence"]["worker"]["pid"] == pid


def test_a_killed_run_is_ended_by_the_next_command(short: Cli, tmp_path: Path) -> None:
    proc, row = start_sleeper(short, tmp_path, "killed")
    kill(proc)
    assert short.show(row["id"])["status"] == "running"  # its lease has not expired yet

    deadline = time.monotonic() + 4 * LEASE + 10
    while True:  # any command reaps: ``runs`` here, as a user would look
        record = next(r for r in short.runs("--workflow", "killed") if r["id"] == row["id"])
        if record["status"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(SWEEP)
    assert_explained_crash(short.show(row["id"]), "process_gone", proc.pid)
    shown = short.run("show", row["id"])  # as a person reads it
    assert shown.returncode == 0, shown.stderr
    said = " ".join(shown.stdout.split())
    assert "crashed (by sweeper)" in said and "crashed by sweeper at " in said
    assert "its process is gone: the process (pid" in said


def test_sweep_once_ends_a_killed_run(short: Cli, tmp_path: Path) -> None:
    proc, row = start_sleeper(short, tmp_path, "swept")
    kill(proc)
    wait_past_lease(short, row["id"])

    result = short.run("sweep", "--once", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["held_lock"] is True
    assert [(a["run_id"], a["status"]) for a in report["actions"]] == [(row["id"], "crashed")]
    assert f"run {row['id']}: crashed" in result.stderr
    assert_explained_crash(short.show(row["id"]), "process_gone", proc.pid)

    again = short.run("sweep", "--once")
    assert again.returncode == 0 and "nothing to do" in again.stderr


def test_a_stale_engine_that_wakes_after_the_sweep_changes_nothing(
    short: Cli, tmp_path: Path
) -> None:
    proc, row = start_sleeper(short, tmp_path, "stale")
    try:
        proc.send_signal(signal.SIGSTOP)  # alive but frozen: only its lease can tell
        wait_past_lease(short, row["id"])
        swept = short.run("sweep", "--once", "--json")
        assert swept.returncode == 0, swept.stderr
        assert [a["crash_cause"] for a in json.loads(swept.stdout)["actions"]] == ["lease_expired"]
    finally:
        proc.send_signal(signal.SIGCONT)
    stdout, stderr = proc.communicate(timeout=30)  # it finds its lease gone and stops

    record = short.show(row["id"])
    assert_explained_crash(record, "lease_expired", proc.pid)  # its writes were refused
    late = [n for n in record["notes"] if n["kind"] == "late_result"]
    assert len(late) == 1 and late[0]["epoch"] == 1  # its result is kept, as a note
    assert json.loads(stdout)["status"] == "crashed", stderr  # it reports the truth
    assert proc.returncode == 1


def test_a_block_hogging_the_event_loop_for_three_leases_is_not_swept(
    short: Cli, tmp_path: Path
) -> None:
    with (tmp_path / "acc_blocks.py").open("a") as blocks:
        blocks.write(HOG_CODE)
    wf = write_workflow(tmp_path, "hog", HOG)
    sweeper = short.start("sweep", "--json")
    try:
        result = short.run("run", str(wf), "--quiet", "--json")
    finally:
        sweeper.send_signal(signal.SIGTERM)
        out, err = sweeper.communicate(timeout=20)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "completed" and record["output"] == {"result": "done"}
    assert record["notes"] == []
    assert sweeper.returncode == 0, err
    passes = [json.loads(line) for line in out.splitlines()]
    assert len(passes) >= 6  # the sweeper kept looking throughout (every 0.5 s, ~6 s)
    assert all(p["actions"] == [] for p in passes)
