"""``flowtrail why`` as a user runs it, and the lease state ``runs`` and ``show`` print:
a `flowtrail run` killed with SIGKILL is named as such until it is swept, then crashed."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store import Finalization, open_store
from flowtrail.store.common import utcnow
from tests.acceptance.clitools import Cli, started, write_workflow

SLEEPER = """
name: {name}
blocks:
  start: {{type: start}}
  first: {{type: function, call: "acc_blocks:quick", with: {{x: 1}}}}
  second: {{type: function, call: "acc_blocks:slow", with: {{seconds: 60}}}}
connections:
  - start -> first
  - first -> second
"""


def why_json(cli: Cli, run_id: str) -> dict[str, Any]:
    result = cli.run("why", run_id, "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def until_verdict(cli: Cli, run_id: str, wanted: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        data = why_json(cli, run_id)
        if data["verdict"] == wanted:
            return data
        seen.append(data["verdict"])
        time.sleep(0.1)
    raise AssertionError(f"never {wanted}; saw {seen}")


def end_as_the_sweeper_does(url: str, run_id: str) -> None:
    """The sweeper's terminal write for a run whose lease expired."""

    async def go() -> None:
        async with open_store(url) as store:
            now = utcnow()
            outcome = await store.finalize(
                run_id,
                Finalization(
                    status=RunStatus.CRASHED,
                    path=FinalizationPath.CRASHED,
                    finalized_by=FinalizedBy.SWEEPER,
                    ended_at=now,
                    duration_ms=1,
                    error_message="the run's lease expired: its process died or hung",
                    crash_cause="lease_expired",
                ),
            )
            assert outcome.persisted

    asyncio.run(go())


def test_a_killed_run_is_named_until_it_is_swept_then_crashed(cli: Cli, tmp_path: Path) -> None:
    cli.env["FLOWTRAIL_LEASE_SECONDS"] = "2"
    wf = write_workflow(tmp_path, "killed", SLEEPER.format(name="killed"))
    proc = cli.start("run", str(wf), "--quiet")
    try:
        row = cli.wait_for(started("second"), "killed")
        alive = why_json(cli, row["id"])
        table = cli.run("runs", "--workflow", "killed")
        shown = cli.run("show", row["id"])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    assert alive["verdict"] == "running_healthy", alive["summary"]
    assert alive["evidence"]["block"]["id"] == "second"
    assert alive["evidence"]["lease_state"] == "held"
    assert 0 < alive["evidence"]["lease_expires_in_s"] <= 2
    assert "running (hb " in table.stdout
    assert "lease ok, heartbeat" in shown.stdout and f":{proc.pid}" in shown.stdout
    assert "running_healthy:" in shown.stdout

    expired = until_verdict(cli, row["id"], "lease_expired")
    assert expired["status"] == "running"
    assert expired["evidence"]["process_gone"] is True
    assert expired["evidence"]["last_started_block"]["block_id"] == "second"
    assert expired["evidence"]["worker"]["pid"] == proc.pid
    assert "its process is gone" in expired["summary"]
    swept_by = expired["evidence"]["sweep_due_at"]
    assert swept_by >= expired["evidence"]["lease_expires_at"]

    table = cli.run("runs", "--workflow", "killed")
    assert table.returncode == 0, table.stderr
    assert "running (lease expired" in table.stdout
    shown = cli.run("show", row["id"])
    assert shown.returncode == 0, shown.stderr
    assert "lease expired" in shown.stdout and "lease_expired:" in shown.stdout
    record = cli.show(row["id"])
    assert record["lease"]["state"] == "expired"
    assert record["why"]["verdict"] == "lease_expired"

    end_as_the_sweeper_does(cli.db, row["id"])
    crashed = why_json(cli, row["id"])
    assert crashed["verdict"] == "crashed" and crashed["status"] == "crashed"
    assert crashed["evidence"]["crash_cause"] == "lease_expired"
    assert crashed["evidence"]["finalized_by"] == "sweeper"
    assert crashed["evidence"]["last_started_block"]["block_id"] == "second"
    assert str(proc.pid) in crashed["summary"]
    assert "why" not in cli.show(row["id"])  # an ended run needs no "why" line


def test_why_human_and_json(cli: Cli, tmp_path: Path) -> None:
    wf = write_workflow(
        tmp_path,
        "fine",
        """
        name: fine
        blocks:
          start: {type: start}
          only: {type: function, call: "acc_blocks:quick"}
        connections: [start -> only]
        """,
    )
    ran = cli.run("run", str(wf), "--json")
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["id"]

    data = why_json(cli, run_id[:12])  # a unique prefix names the run, as in `show`
    assert set(data) == {"run_id", "status", "verdict", "summary", "evidence"}
    assert data["run_id"] == run_id and data["verdict"] == "ended"
    assert data["evidence"]["finalization_path"] == "completed"
    assert data["evidence"]["last_completed_block"]["block_id"] == "only"

    human = cli.run("why", run_id)
    assert human.returncode == 0, human.stderr
    assert "verdict" in human.stdout and "ended" in human.stdout
    assert data["summary"].split(" (")[0] in human.stdout
    assert "last_completed_block" in human.stdout and "only (function)" in human.stdout
    assert cli.runs("--workflow", "fine")[0]["lease"] is None  # only running runs hold one

    result = cli.run("why", "no-such-run", "--json")
    assert result.returncode == 4, result.stderr  # as `show`: unknown or ambiguous id
    assert json.loads(result.stdout)["error"]["code"] == "run_not_found"
    assert "no-such-run" in result.stderr
