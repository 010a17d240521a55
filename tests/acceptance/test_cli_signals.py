"""SIGTERM ends a run the way Ctrl-C does (cancelled, recorded, summary, exit 130) in
every phase of ``flowtrail run``: real processes, real signals."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.acceptance.clitools import Cli, started, write_workflow

ONE_BLOCK = """
name: {name}
blocks:
  start: {{type: start}}
  work: {{type: function, call: "acc_blocks:{fn}", with: {{seconds: 30}}}}
connections: [start -> work]
"""


def _stop(proc: subprocess.Popen[str], sig: signal.Signals) -> tuple[str, str]:
    try:
        proc.send_signal(sig)
        return proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("fn", ["blocking", "slow"])
def test_sigterm_cancels_a_running_block(cli: Cli, tmp_path: Path, fn: str) -> None:
    name = f"term_{fn}"
    wf = write_workflow(tmp_path, name, ONE_BLOCK.format(name=name, fn=fn))
    proc = cli.start("run", str(wf), "--quiet")
    row = cli.wait_for(started("work"), name)
    _out, err = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "cancelled" in err  # the summary was printed
    record = cli.show(row["id"])
    assert (record["status"], record["finalization_path"]) == ("cancelled", "cancelled")
    assert record["cancel_requested_by"] == "cli:SIGTERM"
    work = next(s for s in record["execution_data"]["trace"]["children"] if s["name"] == "work")
    assert work["status"] == "cancelled"


def test_sigterm_while_the_workflow_loads_runs_nothing(cli: Cli, tmp_path: Path) -> None:
    """A module that is slow to import keeps ``run`` in validation; a signal there ends
    the command cleanly and writes no run."""
    flag = tmp_path / "importing"
    (tmp_path / "slow_import.py").write_text(
        "import pathlib, time\n"
        f"pathlib.Path({str(flag)!r}).write_text('x')\n"
        "time.sleep(3)\n"
        "def quick():\n    return 1\n"
    )
    wf = write_workflow(
        tmp_path,
        "loading",
        """
        name: loading
        blocks:
          start: {type: start}
          q: {type: function, call: "slow_import:quick"}
        connections: [start -> q]
        """,
    )
    proc = cli.start("run", str(wf), "--quiet", "--json")
    deadline = time.monotonic() + 30
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    out, err = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "nothing was run" in err
    assert '"interrupted"' in out
    assert cli.runs("--workflow", "loading") == []


def test_sigterm_cancels_a_resumed_run(cli: Cli, tmp_path: Path) -> None:
    wf = write_workflow(
        tmp_path,
        "term_resume",
        """
        name: term_resume
        blocks:
          start: {type: start}
          ask: {type: wait, for: input}
          work: {type: function, call: "acc_blocks:blocking", with: {seconds: 30}}
        connections: [start -> ask, ask -> work]
        """,
    )
    paused = cli.run("run", str(wf), "--quiet", "--json")
    assert paused.returncode == 3, paused.stderr
    run_id = json.loads(paused.stdout)["id"]
    proc = cli.start("resume", run_id, "--input", "{}", "--quiet")
    cli.wait_for(started("work"), "term_resume")
    _out, err = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    record = cli.show(run_id)
    assert (record["status"], record["cancel_requested_by"]) == ("cancelled", "cli:SIGTERM")
