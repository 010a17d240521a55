"""Automatic recovery of crashed queued runs (PostgreSQL): the next attempt is queued
after the backoff, reusing what completed, until the attempts are used up."""

from __future__ import annotations

import asyncio
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from flowtrail.model.compile import compile_file
from flowtrail.queue.recovery import recover_crashed
from flowtrail.queue.submit import submit_run
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from flowtrail.store import SqlStore

pytestmark = pytest.mark.parametrize(
    "store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)

BLOCKS = """
import asyncio
from pathlib import Path

HERE = Path(__file__).parent

def once(name):
    with open(HERE / f"{name}.count", "a") as calls:
        calls.write("x")
    return name

async def hang():
    await asyncio.sleep(60)
"""

WORKFLOW = """
name: recovered
{recovery}
blocks:
  start: {{type: start}}
  a: {{type: function, call: "rec_blocks:once", with: {{name: a}}}}
  b: {{type: function, call: "rec_blocks:hang"}}
connections: [start -> a, a -> b]
"""


def workflow(tmp_path: Path, recovery: str):  # type: ignore[no-untyped-def]
    (tmp_path / "rec_blocks.py").write_text(BLOCKS)
    path = tmp_path / "recovered.yaml"
    path.write_text(textwrap.dedent(WORKFLOW.format(recovery=recovery)))
    return compile_file(path)


async def crash_in_b(store: SqlStore, settings: Settings, run_id: str) -> None:
    """Claim the queued run here and hand it back while ``b`` runs: ``crashed``, as a
    worker that shuts down leaves it."""
    handle = await Runner(settings, store).claim(run_id)
    assert handle is not None
    for _ in range(600):
        marker = (await store.get_run(run_id)).last_started_block
        if marker is not None and marker.block_id == "b":
            break
        await asyncio.sleep(0.05)
    handle.shut_down("worker_shutdown")
    report = await handle.result()
    assert report.status is RunStatus.CRASHED


def scheduled_at(url: str, run_id: str) -> datetime:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT scheduled_at FROM procrastinate_jobs WHERE args->>'run_id' = %s", (run_id,)
        ).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


async def test_a_crashed_queued_run_is_retried_until_its_attempts_run_out(
    store: SqlStore, tmp_path: Path
) -> None:
    settings = Settings(database_url=store.url)
    wf = workflow(tmp_path, "recovery: {attempts: 2, backoff_seconds: 30}")
    first = await submit_run(store, wf, settings=settings)
    await crash_in_b(store, settings, first.id)

    second = await recover_crashed(store, first.id, settings)

    assert second is not None
    assert (second.status, second.attempt, second.retry_of) == (RunStatus.QUEUED, 2, first.id)
    assert second.queue_name == first.queue_name and second.job_id is not None
    old = await store.get_run(first.id)
    assert old.status is RunStatus.CRASHED and old.retried_by == second.id
    assert old.notes[-1]["kind"] == "recovery" and old.notes[-1]["after_seconds"] == 30
    assert scheduled_at(store.url, second.id) > datetime.now(UTC) + timedelta(seconds=20)
    assert await recover_crashed(store, first.id, settings) is None  # retried once only

    await crash_in_b(store, settings, second.id)  # the worker reuses `a`, runs `b` again
    assert (tmp_path / "a.count").read_text() == "x"
    steps = {s.block_id: s for s in await store.list_steps(second.id)}
    assert steps["a"].tries == 0 and steps["b"].status == "running"

    assert await recover_crashed(store, second.id, settings) is None
    last = await store.get_run(second.id)
    assert last.status is RunStatus.CRASHED and last.retried_by is None
    assert last.notes[-1]["kind"] == "recovery_exhausted"
    assert "stays crashed" in last.notes[-1]["message"]


async def test_without_recovery_a_crashed_run_stays_crashed(
    store: SqlStore, tmp_path: Path
) -> None:
    settings = Settings(database_url=store.url)
    first = await submit_run(store, workflow(tmp_path, ""), settings=settings)
    await crash_in_b(store, settings, first.id)

    assert await recover_crashed(store, first.id, settings) is None
    assert (await store.get_run(first.id)).retried_by is None
