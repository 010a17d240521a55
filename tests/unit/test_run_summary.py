"""The one summary builder: ``record_json`` and ``record_detail`` are built on
``run_summary``, so a key they share has one value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flowtrail.diagnostics.summary import (
    DETAIL_KEYS,
    RECORD_KEYS,
    SUMMARY_KEYS,
    record_detail,
    record_json,
    run_summary,
)
from flowtrail.liveness.verdicts import Verdict
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store.records import RunRecord, StartedMarker, StepRecord

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _record(**changes: object) -> RunRecord:
    base: dict[str, object] = dict(
        id="r1",
        workflow_name="wf",
        snapshot_hash="h",
        status=RunStatus.FAILED,
        level="error",
        trigger="cli",
        started_at=NOW - timedelta(seconds=10),
        ended_at=NOW,
        duration_ms=10_000,
        deadline_at=None,
        last_started_block=StartedMarker("b", "b", "function", NOW - timedelta(seconds=2)),
        last_completed_block=None,
        finalization_path=FinalizationPath.FORCE_FAILED,
        finalized_by=FinalizedBy.ENGINE,
        completion_failure=None,
        error_message="boom",
        error_block_id="leaf",
        has_trace_spans=True,
        trace_span_count=3,
        cost_total=0.5,
        tokens_prompt=1,
        tokens_completion=2,
        tokens_total=3,
        models=["m"],
        execution_data={"trace": {"name": "wf"}, "error_path": ["child", "leaf"]},
        output={"big": "x" * 100},
        input={"a": 1},
        marker_write_failures=0,
        cancel_requested_at=None,
        pause_state=None,
        notes=[{"kind": "late_result"}],
        parent_run_id=None,
        updated_at=NOW,
    )
    base.update(changes)
    return RunRecord(**base)  # type: ignore[arg-type]


def test_record_is_the_summary_plus_the_rest() -> None:
    for rec in (
        _record(),
        _record(
            status=RunStatus.RUNNING,
            finalization_path=None,
            ended_at=None,
            lease_epoch=1,
            heartbeat_at=NOW - timedelta(seconds=90),
            lease_expires_at=NOW - timedelta(seconds=30),
        ),
        _record(
            status=RunStatus.PAUSED,
            finalization_path=FinalizationPath.PAUSED,
            pause_state={"waiting": ["ask"], "message": "ok?", "state": {"huge": 1}},
        ),
    ):
        summary = run_summary(rec, now=NOW, lease_seconds=60)
        record = record_json(rec, now=NOW, lease_seconds=60)
        assert tuple(summary) == SUMMARY_KEYS
        assert tuple(record) == (*RECORD_KEYS, "execution_data")
        assert {k: record[k] for k in SUMMARY_KEYS} == summary
        assert not set(DETAIL_KEYS) & set(SUMMARY_KEYS)
    # the summary never carries the heavy columns
    assert not {"execution_data", "input", "output", "notes"} & set(SUMMARY_KEYS)


def test_summary_values() -> None:
    failed = run_summary(_record(), now=NOW, lease_seconds=60)
    assert failed["error"] == {"message": "boom", "block_id": "leaf", "path": ["child", "leaf"]}
    assert failed["lease"] is None and failed["paused"] is None
    assert failed["tokens"] == {"prompt": 1, "completion": 2, "total": 3}
    running = _record(
        status=RunStatus.RUNNING,
        finalization_path=None,
        lease_epoch=1,
        heartbeat_at=NOW - timedelta(seconds=90),
        lease_expires_at=NOW - timedelta(seconds=30),
    )
    lease = run_summary(running, now=NOW, lease_seconds=60)["lease"]
    assert lease["state"] == "expired" and lease["expires_in_s"] == -30.0
    paused = _record(status=RunStatus.PAUSED, pause_state={"waiting": ["ask"], "message": "m"})
    assert run_summary(paused, now=NOW, lease_seconds=60)["paused"] == {
        "waiting_blocks": ["ask"],
        "message": "m",
    }


def test_record_detail_adds_why_and_steps() -> None:
    rec = _record(status=RunStatus.RUNNING, finalization_path=None)
    step = StepRecord(
        "r1", 1, "", "b", "function", "running", NOW, None, 1, None, None, None, False, None
    )
    verdict = Verdict("r1", RunStatus.RUNNING, "running_block", "it runs b")
    detail = record_detail(rec, [step], verdict, now=NOW, lease_seconds=60)
    assert tuple(detail) == (*RECORD_KEYS, "execution_data", "why", "steps")
    assert detail["why"] == verdict.to_dict()
    assert detail["steps"][0]["block_id"] == "b"
    assert "why" not in record_detail(rec, [], None, now=NOW, lease_seconds=60)
