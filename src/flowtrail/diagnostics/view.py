"""The read side: one JSON shape for a run record, and a text tree of its spans. Every
surface (CLI now, HTTP API later) renders runs through here, so they all agree."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from flowtrail.engine.events import containers_in
from flowtrail.store.records import RunRecord, StepRecord


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _error(message: str | None, block_id: str | None, path: Any) -> dict[str, Any]:
    """``{message, block_id}``, plus ``path`` (the ``workflow`` blocks leading to
    ``block_id``, then it) when the failure happened inside child workflows."""
    error: dict[str, Any] = {"message": message, "block_id": block_id}
    if path:
        error["path"] = list(path)
    return error


def _stored_path(rec: RunRecord) -> Any:
    data = rec.execution_data
    return data.get("error_path") if isinstance(data, dict) else None


def record_json(rec: RunRecord, *, include_trace: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": rec.id,
        "workflow": rec.workflow_name,
        "status": rec.status.value,
        "finalization_path": rec.finalization_path.value if rec.finalization_path else None,
        "finalized_by": rec.finalized_by.value if rec.finalized_by else None,
        "error": _error(rec.error_message, rec.error_block_id, _stored_path(rec))
        if rec.error_message or rec.error_block_id
        else None,
        "completion_failure": rec.completion_failure,
        "last_started_block": rec.last_started_block.to_dict() if rec.last_started_block else None,
        "last_completed_block": rec.last_completed_block.to_dict()
        if rec.last_completed_block
        else None,
        "started_at": _iso(rec.started_at),
        "ended_at": _iso(rec.ended_at),
        "duration_ms": rec.duration_ms,
        "deadline_at": _iso(rec.deadline_at),
        "trace_span_count": rec.trace_span_count,
        "has_trace_spans": rec.has_trace_spans,
        "cost_total": rec.cost_total,
        "tokens": {
            "prompt": rec.tokens_prompt,
            "completion": rec.tokens_completion,
            "total": rec.tokens_total,
        },
        "models": rec.models,
        "output": rec.output,
        "input": rec.input,
        "level": rec.level,
        "trigger": rec.trigger,
        "snapshot_hash": rec.snapshot_hash,
        "marker_write_failures": rec.marker_write_failures,
        "cancel_requested_at": _iso(rec.cancel_requested_at),
        "cancel_requested_by": rec.cancel_requested_by,
        "notes": rec.notes,
        "parent_run_id": rec.parent_run_id,
        "updated_at": _iso(rec.updated_at),
        "worker_host": rec.worker_host,
        "worker_pid": rec.worker_pid,
        "claimed_at": _iso(rec.claimed_at),
        "worker_id": rec.worker_id,
        "worker_started_at": _iso(rec.worker_started_at),
        "lease_epoch": rec.lease_epoch,
        "lease_expires_at": _iso(rec.lease_expires_at),
        "heartbeat_at": _iso(rec.heartbeat_at),
        "loop_lag_ms": rec.loop_lag_ms,
        "loop_blocked_since": _iso(rec.loop_blocked_since),
        "crash_cause": rec.crash_cause,
        "queue_name": rec.queue_name,
        "job_id": rec.job_id,
        "queued_at": _iso(rec.queued_at),
        "expires_at": _iso(rec.expires_at),
        "attempt": rec.attempt,
        "retry_of": rec.retry_of,
        "retried_by": rec.retried_by,
        "retry_from_block": rec.retry_from_block,
        "paused": _pause_summary(rec),
        "pruned_at": _iso(rec.pruned_at),
    }
    if include_trace:
        data["execution_data"] = rec.execution_data
    return data


# The keys of ``record_json`` (besides ``execution_data``, the trace): the one shape both
# builders share, so the unrecorded one cannot drift from it.
RECORD_KEYS = (
    "id", "workflow", "status", "finalization_path", "finalized_by", "error",
    "completion_failure", "last_started_block", "last_completed_block", "started_at",
    "ended_at", "duration_ms", "deadline_at", "trace_span_count", "has_trace_spans",
    "cost_total", "tokens", "models", "output", "input", "level", "trigger", "snapshot_hash",
    "marker_write_failures", "cancel_requested_at", "cancel_requested_by", "notes",
    "parent_run_id", "updated_at", "worker_host", "worker_pid", "claimed_at", "worker_id",
    "worker_started_at", "lease_epoch", "lease_expires_at", "heartbeat_at", "loop_lag_ms",
    "loop_blocked_since", "crash_cause", "queue_name", "job_id", "queued_at", "expires_at",
    "attempt", "retry_of", "retried_by", "retry_from_block", "paused", "pruned_at",
)  # fmt: skip


def unrecorded_json(report: Any) -> dict[str, Any]:
    """The same shape for a run made with the durable record off: what is known in memory,
    and ``None`` for what only the record would have (markers, trace)."""
    known = {
        "id": report.run_id,
        "workflow": report.workflow,
        "status": report.status.value,
        "error": _error(report.error, report.error_block_id, report.error_path)
        if report.error
        else None,
        "trace_span_count": 0,
        "has_trace_spans": False,
        "cost_total": 0.0,
        "tokens": {"prompt": 0, "completion": 0, "total": 0},
        "models": [],
        "output": report.output,
        "notes": [],
        "marker_write_failures": 0,
        "paused": {"waiting_blocks": list(report.waiting_blocks), "message": None}
        if report.waiting_blocks
        else None,
    }
    return {**dict.fromkeys(RECORD_KEYS), **known, "recorded": False}


def _pause_summary(rec: RunRecord) -> dict[str, Any] | None:
    state = rec.pause_state
    if not isinstance(state, dict):
        return None
    return {"waiting_blocks": state.get("waiting", []), "message": state.get("message")}


def step_json(step: StepRecord) -> dict[str, Any]:
    """One step as ``show --json`` gives it."""
    return {
        "position": step.position,
        "block_id": step.block_id,
        "block_type": step.block_type,
        "status": step.status,
        "epoch": step.epoch,
        "started_at": _iso(step.started_at),
        "ended_at": _iso(step.ended_at),
        "tries": step.tries,
        "cost": step.cost,
        "handle": step.handle,
        "output": step.output,
        "output_truncated": step.output_truncated,
        "error": step.error,
        "iterations_total": step.iterations_total,
        "iterations_done": step.iterations_done,
    }


_SPAN_STATUS = {"running": "running", "completed": "success", "failed": "error"}


def steps_tree(workflow: str, steps: list[StepRecord]) -> dict[str, Any]:
    """The span tree of a run still going, built from its steps (it has no stored trace
    yet): blocks under their loop or parallel iterations and child workflows, each
    container with its progress (``iterations_done`` of ``iterations_total``)."""
    root: dict[str, Any] = {"name": workflow, "type": "workflow", "status": "running"}
    root["children"] = []
    spans: dict[tuple[str, str], dict[str, Any]] = {}

    def owner(position: str) -> dict[str, Any]:
        """The span steps at ``position`` go under, made on first use."""
        if not position:
            return root
        parent_position, _, last = position.rpartition("/")
        container_id = containers_in(last)[0]
        index = last[len(container_id) + 1 : -1]
        container = spans.get((parent_position, container_id))
        if container is None:  # its own step was not written: stand in for it
            container = {"name": container_id, "type": "container", "status": "running"}
            container["children"] = []
            spans[(parent_position, container_id)] = container
            owner(parent_position)["children"].append(container)
        if container["type"] == "workflow":
            return container
        key = (position, "#iteration")
        iteration = spans.get(key)
        if iteration is None:
            iteration = {"name": f"{container_id} #{index}", "type": "iteration"}
            iteration.update(status="running", children=[])
            spans[key] = iteration
            container["children"].append(iteration)
        return iteration

    for step in sorted(steps, key=lambda s: (s.started_at, s.position.count("/"))):
        span = spans.get((step.position, step.block_id))
        if span is None:
            span = {"children": []}
            spans[(step.position, step.block_id)] = span
            owner(step.position)["children"].append(span)
        span.update(
            name=step.block_id,
            type=step.block_type,
            status=_SPAN_STATUS.get(step.status, step.status),
            block_id=step.block_id,
        )
        if step.ended_at is not None:
            span["duration_ms"] = max(
                0, round((step.ended_at - step.started_at).total_seconds() * 1000)
            )
        if step.tries > 1:
            span["tries"] = step.tries
        if step.error:
            span["error"] = step.error
        if step.iterations_done is not None:
            span["iterations_done"] = step.iterations_done
            span["iterations_total"] = step.iterations_total
    return root


class SpanLine(NamedTuple):
    """One line of a span tree: its depth, its text, its status, and the span itself."""

    depth: int
    label: str
    status: str
    span: dict[str, Any]


def span_lines(span: dict[str, Any] | None, *, limit: int = 200) -> list[SpanLine]:
    """The lines of a span tree, depth-first, at most ``limit``."""
    out: list[SpanLine] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        if len(out) >= limit:
            return
        label = f"{node.get('name')} ({node.get('type')})"
        if node.get("duration_ms") is not None:
            label += f" {node['duration_ms']} ms"
        if node.get("iterations_done") is not None:
            total = node.get("iterations_total")
            label += f" {node['iterations_done']}/{'?' if total is None else total}"
        if node.get("tries"):
            label += f" tries={node['tries']}"
        if node.get("reused"):
            label += " (reused)"
        if node.get("cost"):
            label += f" ${node['cost']:.6f}"
        if node.get("elided_iterations"):
            label += f" [{node['elided_iterations']} iterations elided]"
        if node.get("error"):
            label += f" — {str(node['error'])[:120]}"
        out.append(SpanLine(depth, label, str(node.get("status")), node))
        for child in node.get("children", []):
            walk(child, depth + 1)

    if span:
        walk(span, 0)
    return out
