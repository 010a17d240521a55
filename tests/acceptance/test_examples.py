"""Every example in ``examples/`` runs as its header says (exit code and final status)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.acceptance.clitools import Cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*/*.yaml"))
EXPECTED = re.compile(r"^# Expected: .* exits (?P<code>\d+), status (?P<status>\w+)", re.M)
RESUME = re.compile(r"flowtrail resume RUN_ID --input '(?P<input>[^']*)'")


def _expected(path: Path) -> tuple[int, str]:
    found = EXPECTED.search(path.read_text(encoding="utf-8"))
    assert found, f"{path.name} does not state its expected result in a '# Expected:' header"
    return int(found["code"]), found["status"]


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_runs_as_documented(example: Path, tmp_path: Path) -> None:
    cli = Cli(f"sqlite:///{tmp_path / 'examples.db'}", ROOT)
    code, status = _expected(example)
    result = cli.run("run", str(example), "--json", "--quiet")
    assert result.returncode == code, result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == status
    assert record["finalization_path"] == status  # completed/paused paths match statuses
    assert record["last_completed_block"] is not None
    if status == "paused":
        resume = RESUME.search(example.read_text(encoding="utf-8"))
        assert resume, "a pausing example says how to resume it"
        done = cli.run("resume", record["id"], "--input", resume["input"], "--json", "--quiet")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["status"] == "completed"
