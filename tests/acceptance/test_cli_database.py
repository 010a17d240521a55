"""Which database a command uses when none is named: the nearest ``.flowtrail`` folder
from the current one upwards, as git finds ``.git``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowtrail.settings import default_database_url
from tests.acceptance.clitools import BLOCKS, Cli, write_workflow

QUICK = """
name: quick
blocks:
  start: {type: start}
  q: {type: function, call: "acc_blocks:quick"}
connections: [start -> q]
"""


def _no_flowtrail_above(folder: Path) -> bool:
    return not any((p / ".flowtrail").is_dir() for p in (folder, *folder.parents))


def _default_db_cli(cwd: Path) -> Cli:
    cli = Cli("", cwd)
    del cli.env["FLOWTRAIL_DATABASE_URL"]
    return cli


def test_default_database_url_walks_up(tmp_path: Path) -> None:
    project = tmp_path / "project"
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    (project / ".flowtrail").mkdir()
    expected = f"sqlite:///{(project / '.flowtrail' / 'flowtrail.db').as_posix()}"
    assert default_database_url(deep) == expected
    assert default_database_url(project) == expected
    if _no_flowtrail_above(tmp_path):
        assert default_database_url(tmp_path) == "sqlite:///.flowtrail/flowtrail.db"


def test_commands_from_a_subfolder_see_the_project_database(tmp_path: Path) -> None:
    project = tmp_path / "project"
    sub = project / "reports" / "2026"
    sub.mkdir(parents=True)
    (project / "acc_blocks.py").write_text(BLOCKS)
    wf = write_workflow(project, "quick", QUICK)
    ran = _default_db_cli(project).run("run", str(wf), "--json", "--quiet")
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["id"]
    assert (project / ".flowtrail" / "flowtrail.db").is_file()

    inside = _default_db_cli(sub)
    assert [r["id"] for r in inside.runs()] == [run_id]
    assert inside.show(run_id[:12])["status"] == "completed"
    # a run started from the subfolder lands in the same database, not a new one
    again = inside.run("run", str(wf), "--json", "--quiet")
    assert again.returncode == 0, again.stderr
    assert not (sub / ".flowtrail").exists()
    assert len(inside.runs()) == 2


def test_no_database_found_says_where_it_looked(tmp_path: Path) -> None:
    if not _no_flowtrail_above(tmp_path):
        pytest.skip("a .flowtrail folder above the test folder would be found")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = _default_db_cli(elsewhere).run("runs", "--json")
    assert result.returncode == 5, result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "database_not_found"
    assert str(elsewhere) in error["message"] and "any folder above" in error["message"]
    assert not (elsewhere / ".flowtrail").exists()
