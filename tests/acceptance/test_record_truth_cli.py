"""``flowtrail`` never reports a run as something its record is not (issue 6, section 1).

Real subprocesses, real faults: the function block itself fills the database (SQLite's
``max_page_count`` on the CLI's own connection) or deletes the database file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.acceptance.clitools import Cli, write_workflow

FAULTS = """
import gc
import os


def _store():
    (store,) = [o for o in gc.get_objects() if type(o).__name__ == "SqliteStore"]
    return store


async def fill():
    store = _store()
    pages = (await store._fetch("PRAGMA page_count", {}))[0]["page_count"]
    await store._fetch(f"PRAGMA max_page_count={pages}", {})
    return "z" * 300_000


def delete(path):
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    return "done"
"""


def sqlite_cli(cli: Cli) -> Path:
    if not cli.db.startswith("sqlite:"):
        pytest.skip("a SQLite file fault")
    (cli.cwd / "faults.py").write_text(FAULTS)
    return Path(cli.db.removeprefix("sqlite:///"))


def one_block(cli: Cli, name: str, block: str) -> Path:
    return write_workflow(
        cli.cwd,
        name,
        f"""
        name: {name}
        blocks:
          start: {{type: start}}
          work: {block}
        connections: [start -> work]
        """,
    )


def test_disk_full_at_finalization_exits_5_and_says_not_final(cli: Cli) -> None:
    """Before: exit 0 and ``"status": "running"`` for a run the engine completed."""
    sqlite_cli(cli)
    cli.env["FLOWTRAIL_FINALIZE_RETRY_SECONDS"] = "0.5"
    wf = one_block(cli, "full", '{type: function, call: "faults:fill"}')
    result = cli.run("run", str(wf), "--json", "--quiet")

    assert result.returncode == 5, result.stderr
    data = json.loads(result.stdout)
    assert data["record_final"] is False
    assert data["engine_status"] == "completed"
    assert data["stored_status"] == "running"
    assert "status" not in data  # no status the database does not hold
    assert data["error"]["code"] == "record_not_final"
    assert "database or disk is full" in data["completion_failure"]
    said = result.stderr.replace("\n", "")
    assert "record is not final" in said and "still says running" in said
    assert "Traceback" not in result.stderr
    shown = cli.show(data["id"])
    assert shown["status"] == "running"


def test_deleted_database_is_noticed_and_never_recreated(cli: Cli) -> None:
    """Before: the run said completed into a deleted file, and ``show`` then created a
    new, empty database at the path."""
    path = sqlite_cli(cli)
    wf = one_block(
        cli, "gone", f'{{type: function, call: "faults:delete", with: {{path: "{path}"}}}}'
    )
    result = cli.run("run", str(wf), "--json", "--quiet")

    assert result.returncode == 5, result.stderr
    data = json.loads(result.stdout)
    assert data["record_final"] is False and data["engine_status"] == "completed"
    assert "no flowtrail database" in data["completion_failure"]
    assert "cannot be read back" in result.stderr.replace("\n", "")
    assert not path.exists()

    for args in (("show", data["id"]), ("runs",), ("cancel", data["id"]), ("resume", data["id"])):
        read = cli.run(*args, "--json")
        assert read.returncode == 5, (args, read.stderr)
        assert json.loads(read.stdout)["error"]["code"] == "database_not_found"
        assert cli.db in read.stderr.replace("\n", "")
        assert "Traceback" not in read.stderr
        assert not path.exists(), f"{args[0]} created a database"


def test_run_not_found_names_the_database(cli: Cli) -> None:
    cli.run("runs")  # the database exists (migrated) but holds no such run
    result = cli.run("show", "nope", "--json")
    assert result.returncode == 4
    message = json.loads(result.stdout)["error"]["message"]
    assert message.startswith("no run with id 'nope' in ")
    assert cli.db in message
