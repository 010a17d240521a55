"""``flowtrail why`` as a user runs it, and the lease state ``runs`` and ``show`` print:
a `flowtrail run` killed with SIGKILL is named as such until it is swept, then crashed."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from flowtrail.liveness.why import Verdict, why
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from flowtrail.store import NewRun, Worker, open_store
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

LEASE = 2.0


def why_json(cli: Cli, run_id: str) -> dict[str, Any]:
    result = cli.run("why", run_id, "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


async def _until_verdict(url: str, run_id: str, wanted: str, seconds: float) -> Verdict:
    """``why`` from Python, on a store of its own: a pure read (a CLI command would end
    this host's dead runs first)."""
    settings = Settings(database_url=url, lease_seconds=LEASE, sweep_seconds=0.5)
    seen = []
    async with open_store(url) as store:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = await why(store, run_id, settings)
            if found.verdict == wanted:
                return found
            seen.append(found.verdict)
            await asyncio.sleep(0.05)
    raise AssertionError(f"never {wanted}; saw {seen}")


def until_verdict(url: str, run_id: str, wanted: str, seconds: float = 20) -> Verdict:
    result: Verdict = asyncio.run(_until_verdict(url, run_id, wanted, seconds))
    return result


def test_a_killed_run_is_named_until_it_is_swept_then_crashed(cli: Cli, tmp_path: Path) -> None:
    cli.env["FLOWTRAIL_LEASE_SECONDS"] = str(LEASE)
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
    assert 0 < alive["evidence"]["lease_expires_in_s"] <= LEASE
    assert "running (hb " in table.stdout
    assert "lease ok, heartbeat" in shown.stdout and f":{proc.pid}" in shown.stdout
    assert "running_healthy:" in shown.stdout

    gone = until_verdict(cli.db, row["id"], "process_gone")  # before its lease runs out
    assert gone.evidence["process_gone"] is True
    assert gone.evidence["lease_expires_in_s"] > 0
    expired = until_verdict(cli.db, row["id"], "lease_expired")
    assert expired.status is RunStatus.RUNNING
    assert expired.evidence["process_gone"] is True
    assert expired.evidence["last_started_block"]["block_id"] == "second"
    assert expired.evidence["worker"]["pid"] == proc.pid
    assert "its process is gone" in expired.summary
    assert expired.evidence["sweep_due_at"] > expired.evidence["lease_expires_at"]

    swept = cli.run("sweep", "--once")
    assert swept.returncode == 0, swept.stderr
    crashed = why_json(cli, row["id"])
    assert crashed["verdict"] == "crashed" and crashed["status"] == "crashed"
    assert crashed["evidence"]["crash_cause"] == "process_gone"
    assert "because its process was gone" in crashed["summary"]
    assert crashed["evidence"]["finalized_by"] == "sweeper"
    assert crashed["evidence"]["last_started_block"]["block_id"] == "second"
    assert str(proc.pid) in crashed["summary"]
    assert "why" not in cli.show(row["id"])  # an ended run needs no "why" line


def test_a_run_held_elsewhere_whose_lease_expired(cli: Cli) -> None:
    """A run whose worker on another host stopped renewing its lease: only the lease
    tells, and `runs`, `show` and `why` all say so."""

    run_id = uuid.uuid4().hex

    async def create() -> None:
        async with open_store(cli.db) as store:
            await store.put_snapshot("h", "remote", {"name": "remote", "blocks": {}})
            await store.create_run(
                NewRun(
                    id=run_id,
                    workflow_name="remote",
                    snapshot_hash="h",
                    status=RunStatus.RUNNING,
                    trigger="queue",
                    started_at=utcnow(),
                    input=None,
                    worker=Worker("elsewhere", 4242, "worker-7"),
                    lease_seconds=0.05,
                )
            )

    asyncio.run(create())
    time.sleep(0.1)
    table = cli.run("runs", "--workflow", "remote")
    assert table.returncode == 0, table.stderr
    assert "running (lease expired" in table.stdout
    shown = cli.run("show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert "lease expired" in shown.stdout and "worker-7 (elsewhere:4242)" in shown.stdout
    assert "lease_expired:" in shown.stdout
    data = why_json(cli, run_id)
    assert data["verdict"] == "lease_expired"
    assert "nobody renews it" in data["summary"]
    assert "process_gone" not in data["evidence"]  # another host: not known
    assert data["evidence"]["worker"] == {"id": "worker-7", "host": "elsewhere", "pid": 4242}
    record = cli.show(run_id)
    assert record["lease"]["state"] == "expired" and record["lease"]["expires_in_s"] < 0
    assert record["why"]["verdict"] == "lease_expired"


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
