"""PostgreSQL restarted in the middle of a run: the run completes (or ends explained), and
nothing is lost: every block's span, the final markers, the lease renewed after it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.acceptance.clitools import BLOCKS, Cli, write_workflow
from tests.pgcluster import PrivateCluster, private_cluster

CHAIN = """
name: restarted
blocks:
  start: {type: start}
%s
connections:
%s
"""
STEPS = 16


def in_the_middle(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A run past its first blocks and not yet at its last ones (polling is slow on a
    busy machine: any block in the middle will do)."""
    for row in rows:
        marker = row["last_started_block"]
        if marker and marker["block_id"] in {f"b{i}" for i in range(2, STEPS - 6)}:
            return row
    return None


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    yield from private_cluster()


def test_a_run_survives_a_postgres_restart(cluster: PrivateCluster, tmp_path: Path) -> None:
    (tmp_path / "acc_blocks.py").write_text(BLOCKS)
    cli = Cli(cluster.url, tmp_path)
    cli.env["FLOWTRAIL_LEASE_SECONDS"] = "1.5"
    assert cli.run("db", "upgrade").returncode == 0
    blocks = "\n".join(
        f'  b{i}: {{type: function, call: "acc_blocks:blocking", with: {{seconds: 0.5}}}}'
        for i in range(STEPS)
    )
    edges = "\n".join(["  - start -> b0"] + [f"  - b{i} -> b{i + 1}" for i in range(STEPS - 1)])
    wf = write_workflow(tmp_path, "restarted", CHAIN % (blocks, edges))
    proc = cli.start("run", str(wf), "--quiet", "--json")
    try:
        cli.wait_for(in_the_middle, "restarted", timeout=60)
        cluster.restart()  # every connection of the run is cut here
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    printed = json.loads(stdout)
    record = cli.show(printed["id"])
    assert record["status"] == "completed", record
    assert record["finalization_path"] == "completed"
    assert record["last_completed_block"]["block_id"] == f"b{STEPS - 1}"
    assert record["trace_span_count"] >= STEPS
    spans = json.dumps(record["execution_data"])
    assert all(f'"b{i}"' in spans for i in range(STEPS))
    # the heartbeat reconnected and renewed the lease after the restart
    assert record["lease_epoch"] == 1
    # the restart did happen in the middle of the run (whichever of its connections hit
    # the cut first, the progress writer, the cancel poll or the heartbeat, reconnected)
    with psycopg.connect(cluster.url) as conn:
        row = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
    assert row is not None
    restarted_at = row[0]
    assert datetime.fromisoformat(record["started_at"]) < restarted_at
    assert restarted_at < datetime.fromisoformat(record["ended_at"])
