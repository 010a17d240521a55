"""Commands the CLI tells people to type must work when typed as shown."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from tests.acceptance.clitools import Cli, write_workflow

PAUSES = """
name: hint_pause
blocks:
  start: {type: start}
  ask: {type: wait, for: input, message: "ship it?"}
  done: {type: response, output: {ok: "{{ ask.input.ok }}"}}
connections: [start -> ask, ask -> done]
"""


def test_paused_summary_prints_the_exact_resume_command(cli: Cli, tmp_path: Path) -> None:
    wf = write_workflow(tmp_path, "hint_pause", PAUSES)
    cli.env.pop("FLOWTRAIL_DATABASE_URL")  # the database is named only by --db
    paused = cli.run("run", str(wf), "--db", cli.db)
    assert paused.returncode == 3, paused.stderr
    (command,) = re.findall(r"^\s+(flowtrail resume .*)$", paused.stderr, re.MULTILINE)
    argv = shlex.split(command.replace("<JSON>", '{"ok": true}'))
    if "***" in command:  # a password in the URL is not echoed
        argv[argv.index("--db") + 1] = cli.db
    resumed = cli.run(*argv[1:], "--json", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["output"] == {"ok": True}


def test_schema_behind_hint_repeats_the_db(blank_store_url: str, tmp_path: Path) -> None:
    if blank_store_url.startswith("sqlite"):
        pytest.skip("a SQLite database migrates itself")
    cli = Cli(blank_store_url, tmp_path)
    cli.env.pop("FLOWTRAIL_DATABASE_URL")
    behind = cli.run("runs", "--db", blank_store_url)
    assert behind.returncode == 5
    (hint,) = re.findall(r"run `(flowtrail db upgrade[^`]*)`", behind.stderr)
    assert hint == f"flowtrail db upgrade --db {blank_store_url}"
    upgraded = cli.run(*shlex.split(hint)[1:])
    assert upgraded.returncode == 0, upgraded.stderr
    assert cli.run("runs", "--db", blank_store_url).returncode == 0
