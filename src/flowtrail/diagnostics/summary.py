"""The one status contract of the read surfaces: how a run is shown.

``run_summary`` builds a run's summary row (the CLI's ``runs --json``, the HTTP API's
run list, the web UI's list all print it), ``record_json`` the full record on top of it
(``flowtrail run --json``), and ``record_detail`` what ``flowtrail show --json`` prints
and ``GET /api/v1/runs/{id}`` returns. The record is built *on* the summary, so a key
both carry has one value: it is computed in one place.

A summary reads only the row's cheap columns (every column but the trace,
``execution_data``, the input, the output and the notes), so a list can read lean rows
(``Store.list_summaries``) that leave them out. Of the pause snapshot it needs only
``waiting`` and ``message``, and of the trace only the ``error_path`` (both read by the
lean query on their own).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flowtrail.liveness.lease import lease_state
from flowtrail.liveness.verdicts import Verdict
from flowtrail.store.records import RunRecord, StepRecord

DEFAULT_LEASE_SECONDS = 60.0
"""The lease length a caller without settings assumes (``Settings.lease_seconds``'s
default); it only decides when a running run's heartbeat is called late."""


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def error_json(message: str | None, block_id: str | None, path: Any) -> dict[str, Any]:
    """``{message, block_id}``, plus ``path`` (the ``workflow`` blocks leading to
    ``block_id``, then it) when the failure happened inside child workflows."""
    error: dict[str, Any] = {"message": message, "block_id": block_id}
    if path:
        error["path"] = list(path)
    return error


def error_path(rec: RunRecord) -> Any:
    """The failure's path through child workflows, kept in the trace's ``error_path``
    (a lean row carries just that key of it)."""
    data = rec.execution_data
    return data.get("error_path") if isinstance(data, dict) else None


def pause_summary(rec: RunRecord) -> dict[str, Any] | None:
    """A paused run's ``{waiting_blocks, message}``; ``None`` for any other run."""
    state = rec.pause_state
    if not isinstance(state, dict):
        return None
    return {"waiting_blocks": state.get("waiting") or [], "message": state.get("message")}


SUMMARY_KEYS = (
    "id", "workflow", "status", "finalization_path", "finalized_by", "trigger", "level",
    "started_at", "ended_at", "duration_ms", "deadline_at", "updated_at", "cost_total",
    "tokens", "models", "error", "completion_failure", "last_started_block",
    "last_completed_block", "trace_span_count", "has_trace_spans", "marker_write_failures",
    "attempt", "retry_of", "retried_by", "retry_from_block", "parent_run_id",
    "snapshot_hash", "queue_name", "job_id", "queued_at", "expires_at", "crash_cause",
    "cancel_requested_at", "cancel_requested_by", "worker_host", "worker_pid", "worker_id",
    "worker_started_at", "claimed_at", "lease_epoch", "lease_expires_at", "heartbeat_at",
    "loop_lag_ms", "loop_blocked_since", "lease", "paused", "pruned_at",
)  # fmt: skip


def run_summary(rec: RunRecord, *, now: datetime, lease_seconds: float) -> dict[str, Any]:
    """A run's summary, the same on every surface: where it is (status, path, who decided,
    the last started and completed blocks, how its lease stands at ``now``), how it ended
    (error with its block, ``completion_failure``), what it cost, and its family (retry
    of / retried by, parent). Keys: ``SUMMARY_KEYS``, in that order."""
    lease = lease_state(rec, now, lease_seconds)
    data: dict[str, Any] = {
        "id": rec.id,
        "workflow": rec.workflow_name,
        "status": rec.status.value,
        "finalization_path": rec.finalization_path.value if rec.finalization_path else None,
        "finalized_by": rec.finalized_by.value if rec.finalized_by else None,
        "trigger": rec.trigger,
        "level": rec.level,
        "started_at": iso(rec.started_at),
        "ended_at": iso(rec.ended_at),
        "duration_ms": rec.duration_ms,
        "deadline_at": iso(rec.deadline_at),
        "updated_at": iso(rec.updated_at),
        "cost_total": rec.cost_total,
        "tokens": {
            "prompt": rec.tokens_prompt,
            "completion": rec.tokens_completion,
            "total": rec.tokens_total,
        },
        "models": rec.models,
        "error": error_json(rec.error_message, rec.error_block_id, error_path(rec))
        if rec.error_message or rec.error_block_id
        else None,
        "completion_failure": rec.completion_failure,
        "last_started_block": rec.last_started_block.to_dict() if rec.last_started_block else None,
        "last_completed_block": rec.last_completed_block.to_dict()
        if rec.last_completed_block
        else None,
        "trace_span_count": rec.trace_span_count,
        "has_trace_spans": rec.has_trace_spans,
        "marker_write_failures": rec.marker_write_failures,
        "attempt": rec.attempt,
        "retry_of": rec.retry_of,
        "retried_by": rec.retried_by,
        "retry_from_block": rec.retry_from_block,
        "parent_run_id": rec.parent_run_id,
        "snapshot_hash": rec.snapshot_hash,
        "queue_name": rec.queue_name,
        "job_id": rec.job_id,
        "queued_at": iso(rec.queued_at),
        "expires_at": iso(rec.expires_at),
        "crash_cause": rec.crash_cause,
        "cancel_requested_at": iso(rec.cancel_requested_at),
        "cancel_requested_by": rec.cancel_requested_by,
        "worker_host": rec.worker_host,
        "worker_pid": rec.worker_pid,
        "worker_id": rec.worker_id,
        "worker_started_at": iso(rec.worker_started_at),
        "claimed_at": iso(rec.claimed_at),
        "lease_epoch": rec.lease_epoch,
        "lease_expires_at": iso(rec.lease_expires_at),
        "heartbeat_at": iso(rec.heartbeat_at),
        "loop_lag_ms": rec.loop_lag_ms,
        "loop_blocked_since": iso(rec.loop_blocked_since),
        "lease": None if lease is None else lease.to_dict(),
        "paused": pause_summary(rec),
        "pruned_at": iso(rec.pruned_at),
    }
    return data


# What the full record adds to the summary (besides ``execution_data``, the trace): the
# columns that can be large, which a list never reads.
DETAIL_KEYS = ("output", "input", "notes")

# The keys of ``record_json`` (besides ``execution_data``): the one shape every builder
# of a record shares (``view.unrecorded_json`` too), so none can drift from it.
RECORD_KEYS = SUMMARY_KEYS + DETAIL_KEYS


def record_json(
    rec: RunRecord,
    *,
    now: datetime | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    include_trace: bool = True,
) -> dict[str, Any]:
    """The full record: ``run_summary`` (its lease read at ``now``, default the current
    time) and every other column, then the trace unless ``include_trace`` is false."""
    when = datetime.now(UTC) if now is None else now
    data = run_summary(rec, now=when, lease_seconds=lease_seconds)
    data.update({"output": rec.output, "input": rec.input, "notes": rec.notes})
    if include_trace:
        data["execution_data"] = rec.execution_data
    return data


def step_json(step: StepRecord) -> dict[str, Any]:
    """One step as ``show --json`` gives it."""
    return {
        "position": step.position,
        "block_id": step.block_id,
        "block_type": step.block_type,
        "status": step.status,
        "epoch": step.epoch,
        "started_at": iso(step.started_at),
        "ended_at": iso(step.ended_at),
        "tries": step.tries,
        "cost": step.cost,
        "handle": step.handle,
        "output": step.output,
        "output_truncated": step.output_truncated,
        "error": step.error,
        "iterations_total": step.iterations_total,
        "iterations_done": step.iterations_done,
    }


def record_detail(
    rec: RunRecord,
    steps: Sequence[StepRecord],
    verdict: Verdict | None,
    *,
    now: datetime,
    lease_seconds: float,
) -> dict[str, Any]:
    """Exactly what ``flowtrail show --json`` prints (and the HTTP API's run record):
    ``record_json``, then ``why`` (the verdict, for a run not ended) and ``steps``."""
    data = record_json(rec, now=now, lease_seconds=lease_seconds)
    if verdict is not None:
        data["why"] = verdict.to_dict()
    data["steps"] = [step_json(step) for step in steps]
    return data
