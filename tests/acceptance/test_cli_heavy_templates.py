"""A template doing heavy work no longer holds the run hostage: SIGTERM, SIGINT,
``flowtrail cancel``, the block's timeout and the run deadline all end it while the
template is still evaluating. Real processes, real signals, both backends.

The expression limits are raised far out of reach here, so what ends each run is the
stop under test, not the limits (without the fix, each run would go on for minutes).
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.acceptance.clitools import Cli, started, write_workflow

HEAVY = """
name: {name}
inputs:
  n: {{type: integer, default: 100000}}
blocks:
  start: {{type: start}}
  work:
    type: function
    call: acc_blocks:quick
    {timeout}
    with:
      x: >-
        {{% for i in range(start.n) %}}{{% for j in range(start.n) %}}
        {{% endfor %}}{{% endfor %}}
connections: [start -> work]
"""


def _heavy(cli: Cli, tmp_path: Path, name: str, timeout: str = "") -> Path:
    cli.env["FLOWTRAIL_EXPRESSION_TIMEOUT_SECONDS"] = "600"
    cli.env["FLOWTRAIL_EXPRESSION_MAX_CHARS"] = str(10**15)
    return write_workflow(tmp_path, name, HEAVY.format(name=name, timeout=timeout))


def _finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=30)  # a hang guard, not a timing assertion
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "cancel"])
def test_a_heavy_template_is_stopped_by_signals_and_cancel(
    cli: Cli, tmp_path: Path, how: str
) -> None:
    name = f"heavy_{how.lower()}"
    wf = _heavy(cli, tmp_path, name)
    proc = cli.start("run", str(wf), "--quiet")
    row = cli.wait_for(started("work"), name)
    if how == "cancel":
        asked = cli.run("cancel", row["id"])
        assert asked.returncode == 0, asked.stderr
    else:
        proc.send_signal(getattr(signal, how))
    _out, err = _finish(proc)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    record = cli.show(row["id"])
    assert (record["status"], record["finalization_path"]) == ("cancelled", "cancelled")
    assert record["cancel_requested_by"] == ("cli" if how == "cancel" else f"cli:{how}")


def test_a_heavy_template_is_stopped_by_the_block_timeout(cli: Cli, tmp_path: Path) -> None:
    wf = _heavy(cli, tmp_path, "heavy_block_timeout", timeout="timeout: 1")
    proc = cli.start("run", str(wf), "--quiet", "--json")
    _out, err = _finish(proc)
    assert proc.returncode == 1, err
    row = cli.runs("--workflow", "heavy_block_timeout")[0]
    record = cli.show(row["id"])
    assert record["status"] == "failed"
    assert record["error"]["block_id"] == "work"
    assert "timed out after 1s while evaluating its templates" in record["error"]["message"]


def test_a_heavy_template_is_stopped_by_the_run_deadline(cli: Cli, tmp_path: Path) -> None:
    wf = _heavy(cli, tmp_path, "heavy_deadline")
    proc = cli.start("run", str(wf), "--quiet", "--timeout", "1")
    _out, err = _finish(proc)
    assert proc.returncode == 1, err
    record = cli.show(cli.runs("--workflow", "heavy_deadline")[0]["id"])
    assert (record["status"], record["finalization_path"]) == ("failed", "force_failed")
    assert "run exceeded its deadline of 1s" in record["error"]["message"]
