"""``flowtrail runs`` at 80 columns, and run ids given by a unique prefix, as git does."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.acceptance.clitools import Cli, started, write_workflow

LONG_NAME = "a_workflow_with_a_rather_long_descriptive_name_for_reports"

TWO_STEPS = """
name: {name}
blocks:
  start: {{type: start}}
  first: {{type: function, call: "acc_blocks:quick"}}
  second_block_with_a_long_name: {{type: function, call: "acc_blocks:slow", with: {{seconds: 30}}}}
connections: [start -> first, first -> second_block_with_a_long_name]
"""

PAUSES = """
name: pauses
blocks:
  start: {type: start}
  ask: {type: wait, for: input}
  done: {type: response, output: {ok: "{{ ask.input.ok }}"}}
connections: [start -> ask, ask -> done]
"""


def test_runs_fits_80_columns_with_short_ids_and_the_block_a_run_is_in(
    cli: Cli, tmp_path: Path
) -> None:
    wf = write_workflow(tmp_path, LONG_NAME, TWO_STEPS.format(name=LONG_NAME))
    proc = cli.start("run", str(wf), "--quiet")
    try:
        row = cli.wait_for(started("second_block_with_a_long_name"), LONG_NAME)
        cli.env["COLUMNS"] = "80"
        table = cli.run("runs")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), table.stdout
    (line,) = [ln for ln in lines if "running" in ln]
    short = line.split()[0]
    assert 10 <= len(short) < len(row["id"]) and row["id"].startswith(short)
    # the block it is in (last started), not the last completed one ("first")
    assert "second_block" in line and " first " not in line
    assert "a_workflow_wit…" in line  # a long name is cut, not folded onto a second line
    del cli.env["COLUMNS"]
    # the short id shown can be typed back
    assert cli.show(short)["id"] == row["id"]


def test_every_command_takes_a_unique_prefix(cli: Cli, tmp_path: Path) -> None:
    wf = write_workflow(tmp_path, "pauses", PAUSES)
    first = json.loads(cli.run("run", str(wf), "--json", "--quiet").stdout)
    second = json.loads(cli.run("run", str(wf), "--json", "--quiet").stdout)
    a, b = first["id"], second["id"]
    n = next(i for i in range(len(a)) if a[i] != b[i]) + 1  # shortest unique prefixes

    assert cli.show(a[:n])["id"] == a
    resumed = cli.run("resume", a[:n], "--input", '{"ok": true}', "--json", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["id"] == a
    cancelled = cli.run("cancel", b[:n], "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout) == {**json.loads(cancelled.stdout), "id": b}
    assert cli.show(b)["status"] == "cancelled"

    shared = a[: n - 1]
    for command in ("show", "cancel", "resume"):
        result = cli.run(command, shared, "--json")
        assert result.returncode == 4, (command, result.stderr)
        error = json.loads(result.stdout)["error"]
        assert error["code"] == "ambiguous_run_id"
        assert sorted(error["candidates"]) == sorted([a, b])
        assert a in result.stderr and b in result.stderr

    missing = cli.run("show", "ffff", "--json")
    assert missing.returncode == 4
    assert json.loads(missing.stdout)["error"]["code"] == "run_not_found"
