"""Live progress as people see it: on a real terminal (a pty) and piped."""

from __future__ import annotations

import re
from pathlib import Path

from flowtrail.cli.progress import CHILD
from tests.acceptance.clitools import Cli, run_in_pty, write_workflow

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_terminal_progress_ticks_between_events(cli: Cli, tmp_path: Path) -> None:
    """One block running for 2 s emits no events meanwhile; the display still advances."""
    wf = write_workflow(
        tmp_path,
        "tick",
        """
        name: tick
        blocks:
          start: {type: start}
          work: {type: function, call: "acc_blocks:blocking", with: {seconds: 2}}
        connections: [start -> work]
        """,
    )
    code, drawn = run_in_pty(cli, "run", str(wf))
    assert code == 0, drawn
    frames = re.findall(r"(\S) work \(function\) (\d+\.\d)s", ANSI.sub("", drawn))
    assert len({elapsed for _, elapsed in frames}) >= 3, frames
    assert len({spinner for spinner, _ in frames}) >= 2, frames
    assert "completed" in drawn  # the summary follows


def test_progress_lines_name_the_iteration_and_the_child_workflow(cli: Cli) -> None:
    parent = ROOT / "examples" / "child_workflow" / "parent.yaml"
    result = cli.run("run", str(parent))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    for expected in (
        "▶ bill [0] (workflow)",
        f"▶ bill [1]{CHILD}subtotal (function)",
        "✓ each (loop, 2 iterations)",
    ):
        assert expected in lines, (expected, result.stderr)
    assert any(line.startswith(f"✓ bill [1]{CHILD}tax ") for line in lines), result.stderr
