"""A secret value used as a run input's key is masked in the "unknown input(s)" error."""

from __future__ import annotations

from pathlib import Path

from tests.acceptance.clitools import Cli, write_workflow

SECRET = "sk-live-abcdef123456"


def test_a_secret_used_as_an_input_key_is_masked(cli: Cli, tmp_path: Path) -> None:
    wf = write_workflow(
        tmp_path,
        "declared",
        """
        name: declared
        inputs:
          amount: {type: integer, default: 1}
        blocks:
          start: {type: start}
          q: {type: function, call: "acc_blocks:quick"}
        connections: [start -> q]
        """,
    )
    cli.env["FLOWTRAIL_SECRET_TOKEN"] = SECRET
    result = cli.run("run", str(wf), "--input", f'{{"{SECRET}": 1, "plain": 2}}')
    assert result.returncode == 2, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert "unknown input(s): plain, *** (declared: amount)" in result.stderr
    assert "Traceback" not in result.stderr
