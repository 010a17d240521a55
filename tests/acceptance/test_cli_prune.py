"""``flowtrail prune`` as an operator uses it, on real runs in each real database."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.acceptance.clitools import Cli, write_workflow

BIG = """
name: big
blocks:
  start: {type: start}
  each:
    type: loop
    count: 150
    blocks:
      work: {type: function, call: "acc_blocks:quick", with: {x: "{{ loop.index }}"}}
  done: {type: response, output: {n: "{{ each.results | length }}"}}
connections: [start -> each, each -> done]
"""

FAILS = """
name: fails
blocks:
  start: {type: start}
  boom: {type: function, call: "prune_blocks:boom"}
connections: [start -> boom]
"""

PAUSES = """
name: pauses
blocks:
  start: {type: start}
  ask: {type: wait, for: input}
  done: {type: response, output: {ok: "{{ ask.input.ok }}"}}
connections: [start -> ask, ask -> done]
"""

# What a prune may change in ``show --json``; every other field stays as it was.
DROPPED = {"output", "execution_data", "pruned_at", "steps", "lease"}


def stable(record: dict[str, Any]) -> dict[str, Any]:
    """``show --json`` without what is computed at read time (lease, why)."""
    return {k: v for k, v in record.items() if k not in ("lease", "why")}


def run(cli: Cli, wf: Path) -> str:
    (cli.cwd / "prune_blocks.py").write_text("def boom():\n    raise ValueError('it broke')\n")
    result = cli.run("run", str(wf), "--json", "--quiet")
    assert result.returncode in (0, 1, 3), result.stderr
    run_id: str = json.loads(result.stdout)["id"]
    return run_id


def prune(cli: Cli, *args: str) -> dict[str, Any]:
    result = cli.run("prune", "--json", *args)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def sqlite_bytes(db: str) -> int:
    path = Path(db.removeprefix("sqlite:///"))
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def test_prune_drops_traces_keeps_summaries_and_says_so(cli: Cli, tmp_path: Path) -> None:
    big = [run(cli, write_workflow(tmp_path, "big", BIG)) for _ in range(3)]
    failed = run(cli, write_workflow(tmp_path, "fails", FAILS))
    paused = run(cli, write_workflow(tmp_path, "pauses", PAUSES))
    ended = [*big, failed]
    before = {run_id: cli.show(run_id) for run_id in [*ended, paused]}
    assert all(before[r]["steps"] and before[r]["execution_data"] for r in big)

    dry = prune(cli, "--older-than", "0s", "--dry-run")
    assert (dry["dry_run"], dry["runs"]) == (True, 4)
    assert dry["steps"] == sum(len(before[r]["steps"]) for r in ended)
    assert {r: stable(cli.show(r)) for r in before} == {r: stable(before[r]) for r in before}

    size = sqlite_bytes(cli.db) if cli.db.startswith("sqlite") else None
    report = prune(cli, "--older-than", "0s", "--vacuum")
    assert (report["runs"], report["steps"], report["bytes"]) == (
        dry["runs"],
        dry["steps"],
        dry["bytes"],
    )
    assert report["vacuumed"] and report["size_before"] > 0 and report["size_after"] > 0
    if size is not None:  # the file itself got smaller
        assert sqlite_bytes(cli.db) < size
        assert report["size_after"] < report["size_before"]
    # (PostgreSQL: a plain VACUUM makes space reusable without shrinking the files, and its
    # first pass over a table adds the free-space and visibility maps, so the database may
    # even grow by a few pages: nothing is asserted about its size.)

    for run_id in ended:
        after = cli.show(run_id)
        for key, value in before[run_id].items():
            if key not in DROPPED:
                assert after[key] == value, (run_id, key)
        assert after["steps"] == [] and after["output"] is None and after["pruned_at"]
    assert stable(cli.show(paused)) == stable(before[paused])

    text = cli.run("show", big[0])
    assert text.returncode == 0, text.stderr
    assert f"trace pruned on {cli.show(big[0])['pruned_at']}" in text.stdout
    assert "each #1 (iteration)" not in text.stdout
    assert "151" in text.stdout or str(before[big[0]]["trace_span_count"]) in text.stdout

    again = cli.run("prune", "--older-than", "0s")
    assert again.returncode == 0 and "pruned 0 runs" in again.stderr


def test_status_filter_and_a_young_run(cli: Cli, tmp_path: Path) -> None:
    failed = run(cli, write_workflow(tmp_path, "fails", FAILS))
    done = run(cli, write_workflow(tmp_path, "big", BIG))
    assert prune(cli, "--older-than", "30d")["runs"] == 0  # both are seconds old
    report = prune(cli, "--older-than", "0s", "--status", "failed")
    assert (report["runs"], report["statuses"]) == (1, ["failed"])
    assert cli.show(failed)["pruned_at"] and not cli.show(done)["pruned_at"]

    # a pruned run can still be retried: its definition and input are kept; with no
    # steps left to reuse, every block runs again
    retried = cli.run("retry", failed, "--json", "--quiet")
    assert retried.returncode == 1, retried.stderr  # the block fails again, as it did
    again = cli.show(json.loads(retried.stdout)["id"])
    assert (again["retry_of"], again["attempt"]) == (failed, 2)
    assert [s["block_id"] for s in again["steps"]] == ["start", "boom"]
    assert again["error"]["message"] == cli.show(failed)["error"]["message"]


def test_bad_input_is_refused_with_a_code(cli: Cli, tmp_path: Path) -> None:
    run(cli, write_workflow(tmp_path, "big", BIG))
    for args, code in (
        (("--older-than", "30 days"), "bad_age"),
        (("--older-than", "-3d"), "bad_age"),
        (("--older-than", "30d", "--status", "running"), "not_prunable"),
        (("--older-than", "30d", "--status", "paused"), "not_prunable"),
        (("--older-than", "30d", "--status", "done"), "invalid_input"),
    ):
        result = cli.run("prune", "--json", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert json.loads(result.stdout)["error"]["code"] == code, args
        assert code in result.stderr
    assert not any(r["pruned_at"] for r in cli.runs())
    assert os.environ.get("FLOWTRAIL_DATABASE_URL") != cli.db
