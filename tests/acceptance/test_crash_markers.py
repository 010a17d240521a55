"""The durable record names where a run was when its process died or was cancelled."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.acceptance.clitools import Cli, started, write_workflow

SLEEPER = """
name: {name}
blocks:
  start: {{type: start}}
  first: {{type: function, call: "acc_blocks:quick", with: {{x: 1}}}}
  second: {{type: function, call: "acc_blocks:{fn}", with: {{seconds: 60}}}}
  third: {{type: function, call: "acc_blocks:quick"}}
connections:
  - start -> first
  - first -> second
  - second -> third
"""


def test_sigkill_mid_block_leaves_both_markers(cli: Cli, tmp_path: Path) -> None:
    wf = write_workflow(tmp_path, "killed", SLEEPER.format(name="killed", fn="slow"))
    proc = cli.start("run", str(wf), "--quiet")
    try:
        row = cli.wait_for(started("second"), "killed")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    record = cli.show(row["id"])
    assert record["status"] == "running"  # nobody finalized it: the process is gone
    assert record["last_started_block"]["block_id"] == "second"
    assert record["last_started_block"]["block_type"] == "function"
    assert record["last_completed_block"]["block_id"] == "first"
    assert record["last_completed_block"]["success"] is True
    assert record["finalization_path"] is None


def test_cancel_from_another_process(cli: Cli, tmp_path: Path) -> None:
    wf = write_workflow(tmp_path, "cancelme", SLEEPER.format(name="cancelme", fn="slow"))
    proc = cli.start("run", str(wf), "--quiet", "--json")
    try:
        row = cli.wait_for(started("second"), "cancelme")
        asked = time.monotonic()
        result = cli.run("cancel", row["id"], "--json")
        assert result.returncode == 0, result.stderr
        stdout, stderr = proc.communicate(timeout=20)
        stopped_after = time.monotonic() - asked
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert stopped_after < 20  # liveness, not a benchmark: it did stop on its own
    assert json.loads(stdout)["status"] == "cancelled"
    record = cli.show(row["id"])
    assert record["status"] == "cancelled"
    assert record["finalization_path"] == "cancelled"
    assert record["finalized_by"] == "engine"
    assert record["cancel_requested_at"] is not None
    assert record["last_started_block"]["block_id"] == "second"
    assert record["last_completed_block"]["block_id"] == "first"
    spans = record["execution_data"]["trace"]["children"]
    second = next(s for s in spans if s["name"] == "second")
    assert second["status"] == "cancelled"
    assert not any(s["name"] == "third" for s in spans)


def test_ctrl_c_cancels_cleanly_even_with_a_blocking_thread(cli: Cli, tmp_path: Path) -> None:
    wf = write_workflow(tmp_path, "interrupt", SLEEPER.format(name="interrupt", fn="blocking"))
    proc = cli.start("run", str(wf), "--quiet")
    try:
        row = cli.wait_for(started("second"), "interrupt")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    record = cli.show(row["id"])
    assert record["status"] == "cancelled"
    assert record["last_started_block"]["block_id"] == "second"
