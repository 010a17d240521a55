"""The synchronous Python API beside ``run``: ``get_run``, ``resume`` and ``cancel``, on
both real backends (plain test functions: each call runs its own event loop)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import flowtrail
from flowtrail import RunStatus, Settings
from flowtrail.errors import DatabaseNotFoundError, RunNotFoundError, RunStateError, StoreError

APPROVAL = """
name: api_approval
blocks:
  start: {type: start}
  ask: {type: wait, for: input, message: "go?"}
  done: {type: response, output: {by: "{{ ask.input.by }}"}}
connections: [start -> ask, ask -> done]
"""


@pytest.fixture
def paused(store_url: str, tmp_path: Path) -> tuple[Settings, str]:
    path = tmp_path / "approval.yaml"
    path.write_text(textwrap.dedent(APPROVAL))
    settings = Settings(database_url=store_url)
    report = flowtrail.run(flowtrail.load_workflow(path), settings=settings)
    assert report.status is RunStatus.PAUSED
    return settings, report.run_id


def test_get_run_then_resume_from_the_stored_definition(paused: tuple[Settings, str]) -> None:
    settings, run_id = paused
    record = flowtrail.get_run(run_id, settings=settings)
    assert record.status is RunStatus.PAUSED and record.worker_pid is not None

    done = flowtrail.resume(run_id, {"by": "ana"}, settings=settings)
    assert done.status is RunStatus.COMPLETED and done.record_final
    assert done.output == {"by": "ana"}
    assert flowtrail.get_run(run_id, settings=settings).status is RunStatus.COMPLETED
    with pytest.raises(RunStateError, match="not paused"):
        flowtrail.resume(run_id, {"by": "bo"}, settings=settings)


def test_cancel_a_paused_run_then_an_ended_one(paused: tuple[Settings, str]) -> None:
    settings, run_id = paused
    outcome = flowtrail.cancel(run_id, settings=settings)
    assert outcome.requested and outcome.finalized
    assert outcome.status is RunStatus.CANCELLED
    again = flowtrail.cancel(run_id, settings=settings)
    assert not again.requested and again.status is RunStatus.CANCELLED
    assert flowtrail.get_run(run_id, settings=settings).cancel_requested_by == "api"


def test_unknown_run_names_the_database(store_url: str) -> None:
    settings = Settings(database_url=store_url)
    with pytest.raises(RunNotFoundError) as caught:
        flowtrail.get_run("nope", settings=settings)
    assert not isinstance(caught.value, StoreError)
    assert caught.value.database == store_url and store_url in str(caught.value)
    with pytest.raises(RunNotFoundError):
        flowtrail.cancel("nope", settings=settings)


def test_reading_never_creates_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "flowtrail.db"
    settings = Settings(database_url=f"sqlite:///{missing}")
    for call in (flowtrail.get_run, flowtrail.cancel, flowtrail.resume):
        with pytest.raises(DatabaseNotFoundError, match="no flowtrail database"):
            call("any", settings=settings)
    assert not missing.exists() and not missing.parent.exists()
