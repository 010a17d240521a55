"""``flowtrail runs``: every filter, keyset pages through ``--cursor`` (the next cursor on
stderr), lean JSON rows that are the one summary, and clear errors for bad options."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from flowtrail.diagnostics.summary import SUMMARY_KEYS, run_summary
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store import Finalization, NewRun, SqlStore
from tests.acceptance.clitools import Cli

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


async def _seed(store: SqlStore) -> None:
    await store.put_snapshot("h", "wf", {"name": "wf"})
    spec = [
        # id, workflow, trigger, minutes after T0, status, duration ms, cost, error
        ("a1", "alpha", "cli", 0, RunStatus.COMPLETED, 200, 0.0, None),
        ("a2", "alpha", "python", 10, RunStatus.COMPLETED, 120_000, 3.0, None),
        ("b1", "beta", "cli", 20, RunStatus.FAILED, 5_000, 0.5, "boom"),
        ("b2", "beta", "python", 30, RunStatus.RUNNING, None, 0.0, None),
        ("c1", "gamma", "cli", 40, RunStatus.CANCELLED, 50, 0.0, None),
    ]
    for run_id, workflow, trigger, minutes, status, took, cost, error in spec:
        await store.create_run(
            NewRun(
                id=run_id,
                workflow_name=workflow,
                snapshot_hash="h",
                status=RunStatus.RUNNING,
                trigger=trigger,
                started_at=T0 + timedelta(minutes=minutes),
                input={"secret-ish": "x" * 1000},
            )
        )
        if status is RunStatus.RUNNING:
            continue
        path = {
            RunStatus.COMPLETED: FinalizationPath.COMPLETED,
            RunStatus.FAILED: FinalizationPath.FORCE_FAILED,
            RunStatus.CANCELLED: FinalizationPath.CANCELLED,
        }[status]
        assert took is not None
        outcome = await store.finalize(
            run_id,
            Finalization(
                status=status,
                path=path,
                finalized_by=FinalizedBy.ENGINE,
                ended_at=T0 + timedelta(minutes=minutes, milliseconds=took),
                duration_ms=took,
                cost_total=cost,
                error_message=error,
                error_block_id="blk" if error else None,
                output={"big": "o" * 1000},
                execution_data={"trace": {"name": workflow}},
            ),
        )
        assert outcome.persisted


def _ids(cli: Cli, *args: str) -> list[str]:
    return [row["id"] for row in cli.runs(*args)]


async def test_runs_filters(cli: Cli, store: SqlStore) -> None:
    await _seed(store)
    assert _ids(cli) == ["c1", "b2", "b1", "a2", "a1"]
    assert _ids(cli, "--status", "completed", "--status", "failed") == ["b1", "a2", "a1"]
    assert _ids(cli, "--workflow", "beta") == ["b2", "b1"]
    assert _ids(cli, "--trigger", "python") == ["b2", "a2"]
    assert _ids(cli, "--since", "2026-03-01T13:20:00+01:00") == ["c1", "b2", "b1"]
    assert _ids(cli, "--until", "2026-03-01T12:20:00") == ["a2", "a1"]  # naive = UTC
    assert _ids(cli, "--since", "1h") == []  # an age: these runs are older than an hour
    assert _ids(cli, "--min-duration", "5s") == ["b1", "a2"]
    assert _ids(cli, "--min-duration", "1m") == ["a2"]
    assert _ids(cli, "--min-cost", "0.5") == ["b1", "a2"]
    assert _ids(cli, "--has-error") == ["b1"]
    assert _ids(cli, "--no-error", "--workflow", "alpha") == ["a2", "a1"]


async def test_runs_pages_with_the_cursor(cli: Cli, store: SqlStore) -> None:
    await _seed(store)
    seen: list[str] = []
    args: list[str] = []
    for _ in range(5):
        result = cli.run("runs", "--json", "--limit", "2", *args)
        assert result.returncode == 0, result.stderr
        rows = json.loads(result.stdout)
        assert isinstance(rows, list)  # runs --json stays a list; the cursor is on stderr
        seen += [row["id"] for row in rows]
        cursors = [ln for ln in result.stderr.splitlines() if ln.startswith("next_cursor: ")]
        if not cursors:
            break
        args = ["--cursor", cursors[0].removeprefix("next_cursor: ")]
    assert seen == ["c1", "b2", "b1", "a2", "a1"]
    # the table pages too
    table = cli.run("runs", "--limit", "4")
    assert table.returncode == 0 and "next_cursor: " in table.stderr
    assert "next_cursor" not in cli.run("runs", "--limit", "5").stderr


async def test_runs_json_rows_are_the_summary(cli: Cli, store: SqlStore) -> None:
    await _seed(store)
    rows = cli.runs()
    for row in rows:
        assert tuple(row) == SUMMARY_KEYS
        assert not {"output", "input", "notes", "execution_data"} & set(row)
        full = await store.get_run(row["id"])
        expected = run_summary(full, now=datetime.now(UTC), lease_seconds=60)
        if row["lease"] is not None:  # read at another instant: ages differ
            for key in ("heartbeat_age_s", "expires_in_s", "text", "short"):
                row["lease"].pop(key)
                expected["lease"].pop(key)
        assert row == json.loads(json.dumps(expected)), row["id"]
    show = cli.show("b1")
    assert {key: show[key] for key in SUMMARY_KEYS} == next(r for r in rows if r["id"] == "b1")


def test_runs_bad_options(cli: Cli) -> None:
    cli.run("runs")  # the database exists
    for args, code, words in [
        (("--cursor", "garbage"), "bad_cursor", "bad cursor"),
        (("--status", "completed", "--status", "done"), "invalid_input", "unknown status 'done'"),
        (("--since", "yesterday"), "invalid_input", "--since: 'yesterday'"),
        (("--until", "2026-13-01"), "invalid_input", "--until"),
        (("--min-duration", "fast"), "invalid_input", "--min-duration: 'fast'"),
    ]:
        result = cli.run("runs", "--json", *args)
        assert result.returncode == 2, (args, result.stderr)
        error = json.loads(result.stdout)["error"]
        assert error["code"] == code and words in error["message"], (args, error)
        assert words in result.stderr
