"""``flowtrail.submit``: the Python door to a queued run (PostgreSQL only)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import psycopg
import pytest

import flowtrail
from flowtrail.errors import InputError, QueueError
from flowtrail.settings import Settings

WORKFLOW = """
name: submitted
inputs: {count: {type: number}}
blocks:
  start: {type: start}
  out: {type: response, output: "{{ start.count }}"}
connections: [start -> out]
"""


def _workflow(tmp_path: Path) -> flowtrail.Workflow:
    (tmp_path / "submitted.yaml").write_text(textwrap.dedent(WORKFLOW))
    return flowtrail.load_workflow(tmp_path / "submitted.yaml")


@pytest.mark.parametrize(
    "store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_submit_writes_the_run_queued_and_defers_its_job(
    store_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=store_url)
    record = await flowtrail.submit_async(
        _workflow(tmp_path), {"count": 3}, settings=settings, queue_name="reports"
    )
    assert record.status is flowtrail.RunStatus.QUEUED
    assert record.input == {"count": 3}
    stored = await flowtrail.get_run_async(record.id, settings=settings)
    assert stored.status is flowtrail.RunStatus.QUEUED
    with psycopg.connect(store_url) as conn:
        jobs = conn.execute(
            "SELECT queue_name, task_name, status::text FROM procrastinate_jobs "
            "WHERE args->>'run_id' = %s",
            (record.id,),
        ).fetchall()
    assert jobs == [("reports", "flowtrail.execute_run", "todo")]


@pytest.mark.parametrize(
    "store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_bad_input_is_refused_before_anything_is_written(
    store_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=store_url)
    with pytest.raises(InputError):
        await flowtrail.submit_async(_workflow(tmp_path), {"count": "x"}, settings=settings)
    with psycopg.connect(store_url) as conn:
        count = conn.execute("SELECT count(*) FROM workflow_execution_logs").fetchone()
    assert count == (0,)


async def test_submit_on_sqlite_names_postgresql(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'f.db'}")
    with pytest.raises(QueueError, match="PostgreSQL"):
        await flowtrail.submit_async(_workflow(tmp_path), {"count": 1}, settings=settings)
    assert not (tmp_path / "f.db").exists()
