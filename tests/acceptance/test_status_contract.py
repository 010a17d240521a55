"""One status contract: real runs end in every status and finalization path, and every
surface says the same about each of them, field by field: the database row (read with the
driver, not through flowtrail), ``flowtrail runs --json``, ``flowtrail show --json`` and the
HTTP API (a real uvicorn server on 127.0.0.1): ``GET /api/v1/runs/{id}`` and the run list
``GET /api/v1/runs``.

Statuses and paths made here: completed (completed, fallback_completed), failed
(force_failed; expired on PostgreSQL), cancelled (by the engine, and by the request for a
paused run), paused, crashed (process killed, lease expired), running (a live run), and on
PostgreSQL queued. SQLite has no job queue, so no run there is ever queued or expired.

``assert_surfaces_agree`` is the comparison; a new surface adds itself there.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from flowtrail.api import ServeConfig
from flowtrail.diagnostics.summary import SUMMARY_KEYS
from flowtrail.settings import Settings
from flowtrail.store.sqlite import sqlite_path
from tests.acceptance.apitools import READ_TOKEN, ApiServer, both_tokens, write_workflows
from tests.acceptance.clitools import Cli, started, write_workflow
from tests.integration.diagnostics.support import add_reject_trigger

BIG = """
name: big
blocks:
  start: {type: start}
  greet: {type: function, call: "api_blocks:greet", with: {name: "a long enough name"}}
connections: [start -> greet]
"""

# Every process's lease: long, so that the live run's heartbeat (every third of it) rarely
# moves its row while the surfaces are read (the crashed run's process gets 1 s).
LEASE = "300"

# -- the database row, read with the driver ------------------------------------------------


def db_row(url: str, run_id: str) -> dict[str, Any]:
    sql = "SELECT * FROM workflow_execution_logs WHERE id = "
    if url.startswith("sqlite"):
        with sqlite3.connect(sqlite_path(url)) as conn:
            conn.row_factory = sqlite3.Row
            found = conn.execute(sql + "?", (run_id,)).fetchone()
            return dict(found)
    with psycopg.connect(url, row_factory=dict_row) as conn:
        row = conn.execute(sql + "%s", (run_id,)).fetchone()
        assert row is not None
        return dict(row)


def _doc(value: Any) -> Any:
    """A JSON column as Python: SQLite keeps text, psycopg decodes json/jsonb."""
    return json.loads(value) if isinstance(value, str) else value


def _instant(value: Any) -> datetime | None:
    if value is None:
        return None
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _marker(row: dict[str, Any], which: str) -> dict[str, Any] | None:
    if row[f"last_{which}_block_id"] is None:
        return None
    marker = {
        "block_id": row[f"last_{which}_block_id"],
        "block_name": row[f"last_{which}_block_name"] or "",
        "block_type": row[f"last_{which}_block_type"] or "",
    }
    if which == "started":
        marker["started_at"] = _instant(row["last_started_at"])
    else:
        marker["ended_at"] = _instant(row["last_completed_at"])
        marker["success"] = bool(row["last_completed_success"])
    return marker


def _error(row: dict[str, Any]) -> dict[str, Any] | None:
    if row["error_message"] is None and row["error_block_id"] is None:
        return None
    error: dict[str, Any] = {"message": row["error_message"], "block_id": row["error_block_id"]}
    trace = _doc(row["execution_data"])
    if isinstance(trace, dict) and trace.get("error_path"):
        error["path"] = trace["error_path"]
    return error


def _paused(row: dict[str, Any]) -> dict[str, Any] | None:
    state = _doc(row["pause_state"])
    if not isinstance(state, dict):
        return None
    return {"waiting_blocks": state.get("waiting") or [], "message": state.get("message")}


def _lease(row: dict[str, Any]) -> dict[str, Any] | None:
    if row["status"] != "running":
        return None
    return {
        "epoch": row["lease_epoch"],
        "heartbeat_at": _instant(row["heartbeat_at"]),
        "expires_at": _instant(row["lease_expires_at"]),
    }


_TIMES = (
    "started_at", "ended_at", "deadline_at", "updated_at", "queued_at", "expires_at",
    "cancel_requested_at", "worker_started_at", "claimed_at", "lease_expires_at",
    "heartbeat_at", "loop_blocked_since", "pruned_at",
)  # fmt: skip
_SAME = (
    "id", "status", "finalization_path", "finalized_by", "trigger", "level", "duration_ms",
    "completion_failure", "trace_span_count", "marker_write_failures", "attempt", "retry_of",
    "retried_by", "retry_from_block", "parent_run_id", "snapshot_hash", "queue_name",
    "job_id", "crash_cause", "cancel_requested_by", "worker_host", "worker_pid", "worker_id",
    "lease_epoch", "loop_lag_ms",
)  # fmt: skip

# summary key -> what the database row says it must be
FROM_ROW: dict[str, Callable[[dict[str, Any]], Any]] = {
    **{key: (lambda row, key=key: row[key]) for key in _SAME},
    **{key: (lambda row, key=key: _instant(row[key])) for key in _TIMES},
    "workflow": lambda row: row["workflow_name"],
    "cost_total": lambda row: float(row["cost_total"]),
    "has_trace_spans": lambda row: bool(row["has_trace_spans"]),
    "tokens": lambda row: {
        "prompt": row["tokens_prompt"],
        "completion": row["tokens_completion"],
        "total": row["tokens_total"],
    },
    "models": lambda row: _doc(row["models"]),
    "error": _error,
    "last_started_block": lambda row: _marker(row, "started"),
    "last_completed_block": lambda row: _marker(row, "completed"),
    "paused": _paused,
    "lease": _lease,
}
# the record's keys beyond the summary
DETAIL_FROM_ROW: dict[str, Callable[[dict[str, Any]], Any]] = {
    "output": lambda row: _doc(row["output"]),
    "input": lambda row: _doc(row["input"]),
    "notes": lambda row: _doc(row["notes"]),
    "execution_data": lambda row: _doc(row["execution_data"]),
}


def _as_row_says(key: str, value: Any) -> Any:
    """A surface's JSON value in the shape ``FROM_ROW`` gives (times as instants)."""
    if value is None:
        return None
    if key in _TIMES:
        return _instant(value)
    if key in ("last_started_block", "last_completed_block"):
        when = "started_at" if "started_at" in value else "ended_at"
        return {**value, when: _instant(value[when])}
    if key == "lease":
        return {
            "epoch": value["epoch"],
            "heartbeat_at": _instant(value["heartbeat_at"]),
            "expires_at": _instant(value["expires_at"]),
        }
    return value


# Read at different instants: a running run's lease ages and its why verdict's wording.
_MOVING_LEASE = ("heartbeat_age_s", "expires_in_s", "text", "short")


def _steady(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    if data.get("lease"):
        data["lease"] = {k: v for k, v in data["lease"].items() if k not in _MOVING_LEASE}
    if data.get("why"):
        data["why"] = {k: data["why"][k] for k in ("run_id", "status", "verdict")}
    return data


def assert_surfaces_agree(
    run_id: str,
    *,
    db_url: str,
    cli: Cli,
    listed: dict[str, dict[str, Any]],
    api: ApiServer | None,
    api_listed: dict[str, dict[str, Any]] | None,
) -> dict[str, Any]:
    """The database row, ``runs --json`` (``listed``: its rows by id), ``show --json``, the
    API's record and the API's list (``api_listed``: its rows by id) say the same about
    ``run_id``, field by field. Returns ``show --json``."""
    row = db_row(db_url, run_id)
    shown = cli.show(run_id)
    summary = listed[run_id]
    assert tuple(summary) == SUMMARY_KEYS
    assert set(FROM_ROW) == set(SUMMARY_KEYS), "every summary key is checked on the row"
    # the database row, field by field
    for key in SUMMARY_KEYS:
        expected = FROM_ROW[key](row)
        assert _as_row_says(key, summary[key]) == expected, (run_id, key, summary[key], expected)
    for key, read in DETAIL_FROM_ROW.items():
        assert shown[key] == read(row), (run_id, key)
    # the CLI's list row is the CLI record's summary
    assert _steady(summary) == _steady({k: shown[k] for k in SUMMARY_KEYS}), run_id
    if api is not None:
        with api.client(READ_TOKEN) as client:
            answer = client.get(f"/api/v1/runs/{run_id}")
        assert answer.status_code == 200, answer.text
        assert _steady(answer.json()) == _steady(shown), run_id
    if api_listed is not None:
        assert _steady(api_listed[run_id]) == _steady(summary), run_id
    return shown


# -- making the runs -----------------------------------------------------------------------


def _run(cli: Cli, *args: str) -> dict[str, Any]:
    result = cli.run("run", *args, "--json", "--quiet")
    assert result.stdout, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _start(cli: Cli, workflow: Path, block: str, **env: str) -> tuple[subprocess.Popen[str], str]:
    seen = {row["id"] for row in cli.runs("--workflow", workflow.stem, "--limit", "100")}
    saved = dict(cli.env)
    cli.env.update(env)
    try:
        proc = cli.start("run", str(workflow), "--quiet", "--input", '{"seconds": 600}')
    finally:
        cli.env.clear()
        cli.env.update(saved)
    is_started = started(block)
    row = cli.wait_for(
        lambda rows: is_started([r for r in rows if r["id"] not in seen]), workflow.stem
    )
    return proc, row["id"]


def _wait_status(cli: Cli, run_id: str, status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cli.show(run_id)["status"] == status:
            return
        time.sleep(0.2)
    raise AssertionError(f"{run_id} never became {status}: {cli.show(run_id)}")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_workflows(tmp_path)


@pytest.fixture
def api(store_url: str, folder: Path) -> Iterator[ApiServer]:
    # the lease the CLI reads with (LEASE): a live run's heartbeat renews it every third
    settings = Settings.from_env(database_url=store_url, lease_seconds=float(LEASE))
    server = ApiServer(ServeConfig(settings=settings, workflows_dir=folder, tokens=both_tokens()))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _api_list(api: ApiServer) -> dict[str, dict[str, Any]]:
    """The API's run list (``GET /api/v1/runs``) by id."""
    with api.client(READ_TOKEN) as client:
        answer = client.get("/api/v1/runs", params={"limit": 100})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["next_cursor"] is None
    return {row["id"]: row for row in body["runs"]}


def test_every_status_and_path_reads_the_same_everywhere(
    cli: Cli, store_url: str, folder: Path, api: ApiServer
) -> None:
    cli.cwd = folder
    cli.env["FLOWTRAIL_LEASE_SECONDS"] = LEASE
    postgres = not store_url.startswith("sqlite")
    runs: dict[str, str] = {}
    expected: dict[str, tuple[str, str | None]] = {}

    def made(case: str, run_id: str, status: str, path: str | None) -> None:
        runs[case] = run_id
        expected[case] = (status, path)

    hello = _run(cli, "hello.yaml", "--input", '{"name": "ada"}')
    made("completed", hello["id"], "completed", "completed")
    made("force_failed", _run(cli, "boom.yaml")["id"], "failed", "force_failed")
    made("paused", _run(cli, "approval.yaml")["id"], "paused", "paused")
    to_cancel = _run(cli, "approval.yaml")["id"]
    assert cli.run("cancel", to_cancel).returncode == 0
    made("cancelled_paused", to_cancel, "cancelled", "cancelled")

    # fallback_completed: the database refuses the full record (with its trace) of this
    # workflow's runs, and takes the minimal one
    write_workflow(folder, "big", BIG)
    asyncio.run(
        add_reject_trigger(
            store_url,
            "contract_big",
            "NEW.workflow_name = 'big' AND NEW.has_trace_spans = 1",
            "NEW.workflow_name = 'big' AND NEW.has_trace_spans",
        )
    )
    big = _run(cli, "big.yaml")
    assert big["completion_failure"], big
    made("fallback_completed", big["id"], "completed", "fallback_completed")

    # cancelled by the engine: a running run, asked
    proc, run_id = _start(cli, folder / "sleepy.yaml", "nap")
    assert cli.run("cancel", run_id).returncode == 0
    proc.communicate(timeout=60)
    made("cancelled", run_id, "cancelled", "cancelled")

    # crashed: the process is killed; its 1 s lease expires; the next command ends it
    proc, run_id = _start(cli, folder / "sleepy.yaml", "nap", FLOWTRAIL_LEASE_SECONDS="1")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    time.sleep(1.5)
    _wait_status(cli, run_id, "crashed")
    made("crashed", run_id, "crashed", "crashed")

    if postgres:
        queued = _run(cli, "hello.yaml", "--queue", "--input", '{"name": "q"}')
        made("queued", queued["id"], "queued", None)
        late = _run(
            cli, "hello.yaml", "--queue", "--expires-in", "0.2", "--input", '{"name": "late"}'
        )
        time.sleep(0.5)
        assert cli.run("sweep", "--once").returncode == 0
        made("expired", late["id"], "failed", "expired")

    # running: a live run, read while it runs
    running, run_id = _start(cli, folder / "sleepy.yaml", "nap")
    made("running", run_id, "running", None)
    shown: dict[str, dict[str, Any]] = {}
    try:
        for attempt in range(3):
            # the live run first, in one short window; a heartbeat that renewed its lease
            # in between moves its row: then read again
            before = db_row(store_url, runs["running"])
            listed = {row["id"]: row for row in cli.runs("--limit", "100")}
            api_listed = _api_list(api)
            try:
                shown["running"] = assert_surfaces_agree(
                    runs["running"], db_url=store_url, cli=cli, listed=listed, api=api,
                    api_listed=api_listed,
                )  # fmt: skip
            except AssertionError:
                if attempt < 2 and db_row(store_url, runs["running"]) != before:
                    continue
                raise
            break
        for case, rid in runs.items():
            if case != "running":
                shown[case] = assert_surfaces_agree(
                    rid, db_url=store_url, cli=cli, listed=listed, api=api,
                    api_listed=api_listed,
                )  # fmt: skip
    finally:
        running.send_signal(signal.SIGKILL)
        running.communicate(timeout=30)

    # and each run really is in the status and path it was made for
    for case, (status, path) in expected.items():
        record = shown[case]
        assert (record["status"], record["finalization_path"]) == (status, path), case
    assert len(listed) == len(runs) == len(api_listed)
    assert shown["crashed"]["crash_cause"] == "process_gone"
    assert shown["cancelled_paused"]["finalized_by"] == "api"
    assert shown["cancelled"]["finalized_by"] == "engine"
    assert shown["force_failed"]["error"]["block_id"] == "explode"
    assert shown["paused"]["paused"]["waiting_blocks"] == ["approve"]
    assert shown["running"]["lease"]["state"] == "held"
    assert shown["running"]["why"]["verdict"]
