"""``flowtrail run`` when a block's code calls ``sys.exit()`` or raises
``KeyboardInterrupt``: the run fails at that block (exit 1, summary printed), while a
real Ctrl-C still cancels the run."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.acceptance.clitools import Cli, started, write_workflow

CODE = """
import asyncio
import sys

def sync_exit():
    sys.exit(0)

async def async_interrupt():
    raise KeyboardInterrupt

async def slow():
    await asyncio.sleep(60)
"""

WORKFLOW = """
name: {name}
blocks:
  start: {{type: start}}
  leave: {{type: function, call: "exit_blocks:{fn}"}}
connections: [start -> leave]
"""


@pytest.mark.parametrize(
    ("fn", "raised"), [("sync_exit", "SystemExit(0)"), ("async_interrupt", "KeyboardInterrupt()")]
)
def test_an_exit_inside_a_block_fails_the_run_with_exit_1(
    cli: Cli, tmp_path: Path, fn: str, raised: str
) -> None:
    (tmp_path / "exit_blocks.py").write_text(CODE)
    wf = write_workflow(tmp_path, fn, WORKFLOW.format(name=fn, fn=fn))

    shown = cli.run("run", str(wf))
    assert shown.returncode == 1, shown.stdout + shown.stderr
    summary = shown.stdout + shown.stderr
    assert "failed" in summary and raised in summary  # the summary was printed

    as_json = cli.run("run", str(wf), "--json", "--quiet")
    assert as_json.returncode == 1
    record = json.loads(as_json.stdout)
    assert record["status"] == "failed"
    assert record["error"] == {
        "message": f"the function raised {raised}; a block cannot end the process",
        "block_id": "leave",
    }
    assert record["last_completed_block"]["block_id"] == "leave"


def test_a_real_ctrl_c_during_an_async_block_still_cancels(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "exit_blocks.py").write_text(CODE)
    wf = write_workflow(tmp_path, "slowexit", WORKFLOW.format(name="slowexit", fn="slow"))
    proc = cli.start("run", str(wf), "--quiet")
    try:
        row = cli.wait_for(started("leave"), "slowexit")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert cli.show(row["id"])["status"] == "cancelled"
