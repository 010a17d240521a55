"""``flowtrail cancel`` says what is true: a finished run is left alone (exit 4), a run
whose process was SIGKILLed is ended by the request itself (nothing else could stop it),
a live run is stopped by the process named (exit 0)."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

from tests.acceptance.clitools import Cli, started, write_workflow
from tests.acceptance.test_crash_markers import SLEEPER


def test_cancel_a_finished_run_changes_nothing_and_says_so(cli: Cli, tmp_path: Path) -> None:
    wf = write_workflow(
        tmp_path,
        "quick",
        """
        name: quick
        blocks:
          start: {type: start}
          one: {type: function, call: "acc_blocks:quick"}
        connections: [start -> one]
        """,
    )
    done = cli.run("run", str(wf), "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["id"]
    before = cli.show(run_id)

    result = cli.run("cancel", run_id, "--json")
    assert result.returncode == 4, result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "completed" and data["requested"] is False
    said = " ".join(result.stderr.split())
    assert "already ended: completed; nothing was changed" in said
    assert "next check" not in said
    after = cli.show(run_id)
    assert after["status"] == "completed" and after["cancel_requested_at"] is None
    assert after["updated_at"] == before["updated_at"]


def test_cancel_a_run_whose_process_was_killed(cli: Cli, tmp_path: Path) -> None:
    wf = write_workflow(tmp_path, "orphan", SLEEPER.format(name="orphan", fn="slow"))
    proc = cli.start("run", str(wf), "--quiet")
    try:
        row = cli.wait_for(started("second"), "orphan")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert row["worker_pid"] == proc.pid and row["worker_host"] == socket.gethostname()
    assert row["claimed_at"] is not None
    assert os.getpid() != proc.pid

    result = cli.run("cancel", row["id"], "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["requested"] is True and data["finalized"] is True
    assert data["status"] == "cancelled" and data["executing"] is False
    assert data["worker"] == {"host": socket.gethostname(), "pid": proc.pid}
    said = " ".join(result.stderr.split())
    assert f"run {row['id']} cancelled: its process (pid {proc.pid} on " in said
    assert "was gone" in said and "the request ended it now" in said
    assert "next check" not in said and "swept" not in said
    record = cli.show(row["id"])
    assert record["status"] == "cancelled" and record["finalization_path"] == "cancelled"
    assert record["finalized_by"] == "api"
    assert record["cancel_requested_by"] == "cli"
    assert record["last_started_block"]["block_id"] == "second"  # where it got to: kept
    (note,) = record["notes"]
    assert note["kind"] == "cancel_forced" and note["who"] == "api"
    assert "was gone" in note["why"] and note["evidence"]["worker"]["pid"] == proc.pid
    assert cli.run("cancel", row["id"]).returncode == 4  # ended: a second cancel changes nothing


def test_cancel_a_live_run_names_its_process(cli: Cli, tmp_path: Path) -> None:
    wf = write_workflow(tmp_path, "alive", SLEEPER.format(name="alive", fn="slow"))
    proc = cli.start("run", str(wf), "--quiet", "--json")
    try:
        row = cli.wait_for(started("second"), "alive")
        result = cli.run("cancel", row["id"], "--json")
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["executing"] is True and data["worker"]["pid"] == proc.pid
    assert f"(pid {proc.pid} on " in " ".join(result.stderr.split())
    assert proc.returncode == 130
