"""What a new user meets first: ``--version``, ``--help``, and messages in logs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer

from flowtrail.cli import app
from tests.acceptance.clitools import Cli, write_workflow

COMMANDS = [(), ("run",), ("resume",), ("show",), ("runs",), ("cancel",), ("why",), ("sweep",),
            ("validate",), ("schema",), ("db",), ("db", "upgrade")]  # fmt: skip


def test_version(cli: Cli) -> None:
    result = cli.run("--version")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"flowtrail \S+\n", result.stdout)


def test_help_has_no_type_tags_and_every_parameter_is_explained(cli: Cli) -> None:
    for command in COMMANDS:
        result = cli.run(*command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert not re.search(r"<(bool|str|path|int|float)>", result.stdout), result.stdout
    undocumented = []

    def walk(command: object, where: str) -> None:
        for param in getattr(command, "params", []):
            if not getattr(param, "help", None):
                undocumented.append(f"{where} {param.name}")
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{where} {name}")

    walk(typer.main.get_command(app), "flowtrail")
    assert undocumented == []


def test_piped_output_is_not_wrapped(cli: Cli, tmp_path: Path) -> None:
    phrase = "the upstream service refused the request because " * 4
    (tmp_path / "wordy.py").write_text(f"def fail():\n    raise ValueError({phrase!r})\n")
    wf = write_workflow(
        tmp_path,
        "wordy",
        """
        name: wordy
        inputs: {n: {type: integer, default: 1}}
        blocks:
          start: {type: start}
          call: {type: function, call: "wordy:fail"}
        connections: [start -> call]
        """,
    )
    result = cli.run("run", str(wf))
    assert result.returncode == 1
    assert phrase.strip() in result.stderr  # on one line, not folded at 80 columns
    bad = cli.run("run", str(wf), "--input", json.dumps({"x" * 100: 1}))
    assert bad.returncode == 2
    (line,) = [ln for ln in bad.stderr.splitlines() if ln.startswith("error (")]
    assert "x" * 100 in line
