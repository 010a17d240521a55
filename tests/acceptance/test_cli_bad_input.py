"""Nasty files and inputs through the real command: always exit 2 with an error code,
never a traceback or a hang (issue 6, section 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.acceptance.clitools import Cli

HEAD = "name: nasty\nblocks:\n  start: {type: start}\n"
OK = HEAD + '  r: {type: response, output: "{{ start }}"}\nconnections: ["start -> r"]\n'


def _laughs() -> bytes:
    text = HEAD + 'vars:\n  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefghi":
        text += f"  {name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
        previous = name
    return text.encode()


FILES = {
    "latin1": ((HEAD + "description: café\n").encode("latin-1"), "not_utf8"),
    "deep": ((HEAD + "vars: {a: " + "[" * 500 + "]" * 500 + "}\n").encode(), "too_deep"),
    "laughs": (_laughs(), "too_large"),
    "markup": ((HEAD + '  b: {type: "[/oops]"}\n').encode(), "unknown_block_type"),
    "exits_on_import": (
        (
            HEAD + "  f: {type: function, call: 'stopper:go'}\nconnections: ['start -> f']\n"
        ).encode(),
        "uncallable",
    ),
}


@pytest.fixture
def local(tmp_path: Path) -> Cli:
    (tmp_path / "stopper.py").write_text("import sys\nsys.exit(0)\n", encoding="utf-8")
    return Cli(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path)


@pytest.mark.parametrize("case", list(FILES))
def test_validate_refuses_a_nasty_file_with_a_code(local: Cli, case: str) -> None:
    content, code = FILES[case]
    (local.cwd / "w.yaml").write_bytes(content)
    result = local.run("validate", "w.yaml", "--json", timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    problems = json.loads(result.stdout)["problems"]
    assert code in {p["code"] for p in problems}


@pytest.mark.parametrize(
    "given", ['{"a": NaN}', "[" * 100_000, '{"a": "\\u0000"}', "@missing.json", "@latin1.json"]
)
def test_run_refuses_a_nasty_input_before_anything_is_stored(local: Cli, given: str) -> None:
    (local.cwd / "w.yaml").write_text(OK, encoding="utf-8")
    (local.cwd / "latin1.json").write_bytes('{"a": "é"}'.encode("latin-1"))
    result = local.run("run", "w.yaml", "--input", given, "--json", timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout)["error"]["code"] == "invalid_input"
    assert not (local.cwd / "db.sqlite").exists()


def test_no_record_refuses_a_workflow_that_can_pause(local: Cli) -> None:
    (local.cwd / "w.yaml").write_text(
        HEAD + "  ask: {type: wait, for: input}\nconnections: ['start -> ask']\n", encoding="utf-8"
    )
    result = local.run("run", "w.yaml", "--no-record", timeout=60)
    assert result.returncode == 2, result.stderr
    assert "--no-record: block 'ask' can pause the run for input" in result.stderr
    assert "Traceback" not in result.stderr


def test_brackets_in_data_print_as_they_are_in_json(local: Cli) -> None:
    (local.cwd / "w.yaml").write_text(OK, encoding="utf-8")
    result = local.run("run", "w.yaml", "--no-record", "--json", "--input", '{"a": "[/x] [red]"}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output"] == {"a": "[/x] [red]"}
