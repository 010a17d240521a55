"""``flowtrail validate --inputs``: what a workflow takes, before running it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.acceptance.clitools import Cli, write_workflow

DECLARES = """
name: declares
inputs:
  customer: {type: string, description: "Who is billed"}
  count: {type: integer, default: 3}
  note: {type: string, required: false}
blocks:
  start: {type: start}
  done: {type: response, output: {n: "{{ start.count }}"}}
connections: [start -> done]
"""


def test_validate_lists_declared_inputs(cli: Cli, tmp_path: Path) -> None:
    wf = write_workflow(tmp_path, "declares", DECLARES)
    as_json = cli.run("validate", str(wf), "--inputs", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["inputs"] == [
        {"name": "customer", "type": "string", "required": True, "default": None,
         "description": "Who is billed"},
        {"name": "count", "type": "integer", "required": False, "default": 3,
         "description": None},
        {"name": "note", "type": "string", "required": False, "default": None,
         "description": None},
    ]  # fmt: skip
    table = cli.run("validate", str(wf), "--inputs")
    assert table.returncode == 0, table.stderr
    rows = {line.split()[0]: line.split() for line in table.stdout.splitlines()[2:]}
    assert rows["customer"][:4] == ["customer", "string", "yes", "—"]
    assert "Who is billed" in table.stdout
    assert rows["count"][:4] == ["count", "integer", "no", "3"]
    # the table is what run checks: the required input is indeed required
    assert cli.run("run", str(wf), "--json").returncode == 2
    ok = cli.run("run", str(wf), "--input", '{"customer": "Ada", "note": "-"}', "--quiet")
    assert ok.returncode == 0, ok.stderr
    # without --inputs the JSON shape is unchanged
    plain = json.loads(cli.run("validate", str(wf), "--json").stdout)
    assert "inputs" not in plain
