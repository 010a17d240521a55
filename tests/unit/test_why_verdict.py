"""Every verdict of "why is this run not moving?", from constructed rows at a fixed
instant: the pure function, no clock, no database."""

from __future__ import annotations

import dataclasses
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowtrail.liveness.lease import ago, lease_state
from flowtrail.liveness.why import VERDICTS, block_timeouts, running_blocks, verdict
from flowtrail.settings import Settings
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store.records import (
    CompletedMarker,
    QueueJob,
    RunRecord,
    StartedMarker,
    StepRecord,
)

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
SETTINGS = Settings(database_url="sqlite:///unused.db", lease_seconds=60, sweep_seconds=15)


def at(seconds_ago: float) -> datetime:
    return NOW - timedelta(seconds=seconds_ago)


def started(block_id: str, seconds_ago: float, block_type: str = "function") -> StartedMarker:
    return StartedMarker(block_id, block_id, block_type, at(seconds_ago))


def completed(block_id: str, seconds_ago: float, success: bool = True) -> CompletedMarker:
    return CompletedMarker(block_id, block_id, "function", at(seconds_ago), success)


def record(status: RunStatus = RunStatus.RUNNING, **fields: Any) -> RunRecord:
    base = RunRecord(
        id="run-1",
        workflow_name="wf",
        snapshot_hash="h",
        status=status,
        level="info",
        trigger="cli",
        started_at=at(300),
        ended_at=None,
        duration_ms=None,
        deadline_at=None,
        last_started_block=None,
        last_completed_block=None,
        finalization_path=None,
        finalized_by=None,
        completion_failure=None,
        error_message=None,
        error_block_id=None,
        has_trace_spans=False,
        trace_span_count=0,
        cost_total=0.0,
        tokens_prompt=0,
        tokens_completion=0,
        tokens_total=0,
        models=[],
        execution_data=None,
        output=None,
        input=None,
        marker_write_failures=0,
        cancel_requested_at=None,
        pause_state=None,
        notes=[],
        parent_run_id=None,
        updated_at=at(1),
    )
    return dataclasses.replace(base, **fields)


def running(**fields: Any) -> RunRecord:
    """A run held by a healthy worker: claimed 5 min ago, heartbeat 3 s ago."""
    values: dict[str, Any] = {
        "worker_host": "box",
        "worker_pid": 4242,
        "worker_id": "box:4242",
        "claimed_at": at(300),
        "lease_epoch": 1,
        "heartbeat_at": at(3),
        "lease_expires_at": at(3) + timedelta(seconds=60),
        "last_started_block": started("fetch", 40),
        "last_completed_block": completed("start", 41),
    }
    values.update(fields)
    return record(values.pop("status", RunStatus.RUNNING), **values)


def test_running_healthy_names_the_block_since_when_and_the_heartbeat() -> None:
    v = verdict(running(), NOW, SETTINGS)
    assert v.verdict == "running_healthy"
    assert "block 'fetch' (function)" in v.summary
    assert "2026-12-01T11:59:20Z" in v.summary  # since when
    assert "heartbeat 3s ago" in v.summary and "box:4242" in v.summary
    ev = v.evidence
    assert ev["block"] == {
        "id": "fetch",
        "type": "function",
        "started_at": "2026-12-01T11:59:20+00:00",
        "running_for_s": 40.0,
    }
    assert ev["heartbeat_age_s"] == 3.0
    assert ev["lease_state"] == "held"
    assert ev["lease_expires_in_s"] == 57.0
    assert ev["worker"] == {"id": "box:4242", "host": "box", "pid": 4242}
    assert ev["last_completed_block"]["block_id"] == "start"


def test_running_between_blocks_names_the_last_completed() -> None:
    rec = running(last_started_block=started("a", 5), last_completed_block=completed("a", 1))
    v = verdict(rec, NOW, SETTINGS)
    assert v.verdict == "running_healthy"
    assert "between blocks" in v.summary and "'a'" in v.summary
    assert "block" not in v.evidence


def test_running_steps_name_every_block_in_flight_oldest_first() -> None:
    steps = [
        StepRecord("run-1", 1, p, b, "function", "running", at(s), None, 1, None, None, None,
                   False, None)
        for p, b, s in (("[1]", "branch", 10), ("[0]", "branch", 30), ("", "other", 20))
    ]  # fmt: skip
    blocks = running_blocks(running(), steps)
    assert [(b.block_id, b.position) for b in blocks] == [
        ("branch", "[0]"),
        ("other", None),
        ("branch", "[1]"),
    ]
    v = verdict(running(), NOW, SETTINGS, steps=steps)
    assert v.verdict == "running_healthy"
    assert "block 'branch' (function) at [0] and 2 more" in v.summary
    assert v.evidence["running_blocks"] == 3


def test_block_over_timeout() -> None:
    v = verdict(running(), NOW, SETTINGS, timeouts={"fetch": 30.0})
    assert v.verdict == "block_over_timeout"
    assert "40s" in v.summary and "timeout of 30s" in v.summary
    assert v.evidence["timeout_s"] == 30.0
    within = verdict(running(), NOW, SETTINGS, timeouts={"fetch": 50.0})
    assert within.verdict == "running_healthy"
    assert within.evidence["timeout_s"] == 50.0


def test_block_slow_against_the_median_of_previous_runs() -> None:
    v = verdict(running(), NOW, SETTINGS, usual_durations={"fetch": [9.0, 10.0, 12.0, 11.0]})
    assert v.verdict == "block_slow"
    assert "usual 10s" in v.summary and "median of 4" in v.summary
    assert v.evidence["usual_s"] == 10.5 and v.evidence["usual_samples"] == 4
    # not far enough over, or too few runs to know what usual is: healthy
    assert verdict(running(), NOW, SETTINGS, usual_durations={"fetch": [20.0] * 5}).verdict == (
        "running_healthy"
    )
    assert verdict(running(), NOW, SETTINGS, usual_durations={"fetch": [1.0, 1.0]}).verdict == (
        "running_healthy"
    )


def test_a_timeout_outranks_a_usual_duration() -> None:
    v = verdict(
        running(), NOW, SETTINGS, timeouts={"fetch": 30.0}, usual_durations={"fetch": [1.0] * 5}
    )
    assert v.verdict == "block_over_timeout"


def test_event_loop_blocked_says_since_when_and_in_which_block() -> None:
    rec = running(loop_lag_ms=12_000, loop_blocked_since=at(12))
    v = verdict(rec, NOW, SETTINGS, timeouts={"fetch": 30.0})
    assert v.verdict == "event_loop_blocked"  # it explains the overrun: no timer can fire
    assert "since 2026-12-01T11:59:48Z (12s ago)" in v.summary
    assert "block 'fetch'" in v.summary
    assert v.evidence["loop_lag_ms"] == 12_000
    assert v.evidence["loop_blocked_since"] == "2026-12-01T11:59:48+00:00"


def test_waiting_for_input_since_when_which_block_and_message() -> None:
    rec = record(
        RunStatus.PAUSED,
        last_started_block=started("approve", 600, "wait"),
        last_completed_block=completed("fetch", 601),
        pause_state={"waiting": ["approve"], "message": "Ship it?", "state": {}},
    )
    v = verdict(rec, NOW, SETTINGS)
    assert v.verdict == "waiting_for_input"
    assert "'approve'" in v.summary and "Ship it?" in v.summary
    assert "10m00s ago" in v.summary
    assert "flowtrail resume run-1 --input JSON" in v.summary
    assert v.evidence["paused_since"] == "2026-12-01T11:50:00+00:00"
    assert v.evidence["waiting_for_s"] == 600.0
    assert v.evidence["waiting_blocks"] == ["approve"]
    assert v.evidence["message"] == "Ship it?"


def test_cancelling_comes_before_health() -> None:
    rec = running(cancel_requested_at=at(2), cancel_requested_by="cli")
    v = verdict(rec, NOW, SETTINGS)
    assert v.verdict == "cancelling"
    assert "by cli" in v.summary and "stops at its next check" in v.summary
    assert v.evidence["cancel_requested_by"] == "cli"
    assert v.evidence["cancelling_for_s"] == 2.0
    # unanswered past the grace (one lease by default), the sweeper forces it
    assert v.evidence["forced_by_about"] == "2026-12-01T12:01:13+00:00"
    assert "if it has not by about 2026-12-01T12:01:13Z" in v.summary


def test_cancelling_a_run_nobody_executes_says_the_sweeper_ends_it() -> None:
    rec = running(
        cancel_requested_at=at(2),
        cancel_requested_by="api",
        heartbeat_at=at(90),
        lease_expires_at=at(30),
    )
    v = verdict(rec, NOW, SETTINGS)
    assert v.verdict == "cancelling"
    assert "nobody is executing" in v.summary and "sweeper" in v.summary


def test_lease_expired_says_when_the_sweeper_ends_it() -> None:
    rec = running(heartbeat_at=at(75), lease_expires_at=at(12))
    v = verdict(rec, NOW, SETTINGS, process_is_gone=True)
    assert v.verdict == "lease_expired"
    assert "expired at 2026-12-01T11:59:48Z (12s ago)" in v.summary
    assert "its process is gone" in v.summary and "box:4242" in v.summary
    # the sweeper's next pass after the expiry: at most one interval from now
    assert v.evidence["sweep_due_at"] == "2026-12-01T12:00:15+00:00"
    assert v.evidence["lease_expires_in_s"] == -12.0
    assert v.evidence["process_gone"] is True
    assert v.evidence["lease_state"] == "expired"
    unknown = verdict(rec, NOW, SETTINGS)
    assert unknown.verdict == "lease_expired" and "nobody renews it" in unknown.summary


def test_lease_expired_outranks_a_blocked_loop_it_recorded_earlier() -> None:
    rec = running(lease_expires_at=at(1), loop_lag_ms=5000, loop_blocked_since=at(70))
    assert verdict(rec, NOW, SETTINGS).verdict == "lease_expired"


def test_process_gone_before_its_lease_runs_out() -> None:
    v = verdict(running(), NOW, SETTINGS, process_is_gone=True)
    assert v.verdict == "process_gone"
    assert "lease runs out at 2026-12-01T12:00:57Z" in v.summary
    assert v.evidence["sweep_due_at"] == "2026-12-01T12:01:12+00:00"


def test_queued_no_worker() -> None:
    rec = record(RunStatus.QUEUED, queue_name="flowtrail", queued_at=at(125))
    v = verdict(rec, NOW, SETTINGS, workers=0, ahead=2)
    assert v.verdict == "queued_no_worker"
    assert "queue 'flowtrail'" in v.summary and "2 runs ahead" in v.summary
    assert "flowtrail worker" in v.summary
    assert v.evidence["waiting_for_s"] == 125.0 and v.evidence["live_workers"] == 0
    no_queue = verdict(rec, NOW, SETTINGS)  # SQLite: no workers can exist at all
    assert no_queue.verdict == "queued_no_worker" and "PostgreSQL" in no_queue.summary
    assert "live_workers" not in no_queue.evidence


def test_queued_waiting_for_a_worker() -> None:
    rec = record(RunStatus.QUEUED, queue_name="flowtrail", queued_at=at(5), expires_at=at(-55))
    v = verdict(rec, NOW, SETTINGS, workers=2, ahead=1)
    assert v.verdict == "queued_waiting_for_worker"
    assert "1 run ahead" in v.summary and "2 live workers" in v.summary
    assert v.evidence["ahead"] == 1 and v.evidence["expires_at"] == "2026-12-01T12:00:55+00:00"


def test_queued_expired() -> None:
    rec = record(RunStatus.QUEUED, queue_name="q", queued_at=at(3600), expires_at=at(10))
    v = verdict(rec, NOW, SETTINGS, workers=3)
    assert v.verdict == "queued_expired"
    assert "time-to-live" in v.summary and "sweeper" in v.summary


def test_queued_behind_a_job_scheduled_later() -> None:
    rec = record(RunStatus.QUEUED, queue_name="q", queued_at=at(5), job_id=77)
    job = QueueJob(77, "todo", at(-120))
    v = verdict(rec, NOW, SETTINGS, workers=1, job=job)
    assert v.verdict == "queued_scheduled"
    assert "job 77 is scheduled for 2026-12-01T12:02:00Z (in 2m00s" in v.summary
    assert v.evidence["job"] == {"id": 77, "status": "todo",
                                 "scheduled_at": "2026-12-01T12:02:00+00:00"}  # fmt: skip
    due = verdict(rec, NOW, SETTINGS, workers=1, job=QueueJob(77, "todo", at(1)))
    assert due.verdict == "queued_waiting_for_worker"


@pytest.mark.parametrize("status", ["failed", "cancelled", "aborted", "absent"])
def test_queued_with_a_job_that_will_never_run_it(status: str) -> None:
    rec = record(RunStatus.QUEUED, queue_name="q", queued_at=at(5), job_id=77)
    v = verdict(rec, NOW, SETTINGS, workers=3, job=QueueJob(77, status))
    assert v.verdict == "queued_job_lost"
    assert "job 77" in v.summary and "reconciliation" in v.summary
    assert v.evidence["job"]["status"] == status


def test_crashed_names_cause_worker_and_last_markers() -> None:
    rec = running(
        status=RunStatus.CRASHED,
        ended_at=at(20),
        finalization_path=FinalizationPath.CRASHED,
        finalized_by=FinalizedBy.SWEEPER,
        crash_cause="lease_expired",
    )
    v = verdict(rec, NOW, SETTINGS)
    assert v.verdict == "crashed"
    assert "because its lease expired with nobody renewing it" in v.summary
    assert "box:4242" in v.summary
    assert "block 'fetch'" in v.summary and "by the sweeper" in v.summary
    assert v.evidence["crash_cause"] == "lease_expired"
    assert v.evidence["last_started_block"]["block_id"] == "fetch"
    assert v.evidence["worker"]["pid"] == 4242


@pytest.mark.parametrize(
    ("status", "path", "fields", "words"),
    [
        (RunStatus.COMPLETED, FinalizationPath.COMPLETED, {}, ["Ended completed", "engine"]),
        (
            RunStatus.FAILED,
            FinalizationPath.FORCE_FAILED,
            {"error_message": "boom", "error_block_id": "fetch"},
            ["failed (force_failed)", "boom", "block 'fetch'"],
        ),
        (RunStatus.FAILED, FinalizationPath.EXPIRED, {}, ["(expired)", "time-to-live"]),
        (
            RunStatus.CANCELLED,
            FinalizationPath.CANCELLED,
            {"cancel_requested_by": "cli", "cancel_requested_at": at(30)},
            ["Ended cancelled", "by cli"],
        ),
    ],
)
def test_ended(
    status: RunStatus, path: FinalizationPath, fields: dict[str, Any], words: list[str]
) -> None:
    rec = record(
        status,
        finalization_path=path,
        finalized_by=FinalizedBy.ENGINE,
        ended_at=at(60),
        duration_ms=1500,
        **fields,
    )
    v = verdict(rec, NOW, SETTINGS)
    assert v.verdict == "ended"
    for word in words:
        assert word in v.summary
    assert v.evidence["finalization_path"] == path.value
    assert v.evidence["ended_at"] == "2026-12-01T11:59:00+00:00"
    assert v.to_dict()["status"] == status.value


def test_every_summary_is_one_sentence_and_every_verdict_is_known() -> None:
    given = [
        verdict(running(), NOW, SETTINGS),
        verdict(running(loop_lag_ms=2000, loop_blocked_since=at(2)), NOW, SETTINGS),
        verdict(record(RunStatus.QUEUED, queued_at=at(1)), NOW, SETTINGS),
        verdict(record(RunStatus.PAUSED, pause_state={"waiting": ["w"]}), NOW, SETTINGS),
    ]
    for v in given:
        assert v.verdict in VERDICTS
        assert v.summary.endswith(".") and "\n" not in v.summary


def test_block_timeouts_reads_the_stored_definition() -> None:
    document = {
        "name": "wf",
        "blocks": {
            "a": {"type": "function", "call": "m:f", "timeout": 10},
            "b": {"type": "function", "call": "m:f", "timeout": 5, "retry": {"tries": 2}},
            "c": {"type": "function", "call": "m:f"},
            "loop": {
                "type": "loop",
                "count": 3,
                "timeout": 100,
                "blocks": {"inner": {"type": "function", "call": "m:f", "timeout": 2.5}},
            },
        },
    }
    # b: two tries of 5 s, and the default 1 s wait between them
    assert block_timeouts(document) == {"a": 10.0, "b": 11.0, "loop": 100.0, "inner": 2.5}
    assert block_timeouts(None) == {}


def test_lease_state_text() -> None:
    held = lease_state(running(), NOW, 60)
    assert held is not None and held.text() == "lease ok, heartbeat 3s ago, worker box:4242"
    late = lease_state(running(heartbeat_at=at(50)), NOW, 60)
    assert late is not None and late.state == "late"
    gone = lease_state(running(lease_expires_at=at(12)), NOW, 60)
    assert gone is not None and gone.short() == "lease expired 12s ago"
    named = lease_state(running(worker_id="w-7"), NOW, 60)
    assert named is not None and named.worker == "w-7 (box:4242)"
    assert lease_state(record(RunStatus.PAUSED), NOW, 60) is None
    assert [ago(s) for s in (0.011, 2.4, 12, 185, 7620, 90_000)] == [
        "11ms", "2.4s", "12s", "3m05s", "2h07m", "1d01h"]  # fmt: skip


def test_this_host_is_not_needed_for_a_pure_verdict() -> None:
    # the verdict never looks at processes itself: a row from this very host, with a pid
    # that is surely not alive, is still "healthy" unless the caller says it is gone
    rec = running(worker_host=socket.gethostname(), worker_pid=2**22 + 7)
    assert verdict(rec, NOW, SETTINGS).verdict == "running_healthy"
