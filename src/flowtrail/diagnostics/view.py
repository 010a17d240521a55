"""The read side: the JSON of a run record (built in ``diagnostics.summary``, re-exported
here), the same shape for an unrecorded run, and a text tree of its spans. Every surface
renders runs through these, so they all agree."""

from __future__ import annotations

from typing import Any, NamedTuple

from flowtrail.diagnostics.summary import (
    RECORD_KEYS,
    error_json,
    iso,
    record_json,
    step_json,
)
from flowtrail.engine.events import containers_in
from flowtrail.store.records import StepRecord

__all__ = [
    "RECORD_KEYS",
    "SpanLine",
    "record_json",
    "span_lines",
    "step_json",
    "steps_tree",
    "unrecorded_json",
]


def unrecorded_json(report: Any) -> dict[str, Any]:
    """The same shape for a run made with the durable record off: what is known in memory,
    and ``None`` for what only the record would have (markers, trace)."""
    known = {
        "id": report.run_id,
        "workflow": report.workflow,
        "status": report.status.value,
        "error": error_json(report.error, report.error_block_id, report.error_path)
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
            position=step.position,
            started_at=iso(step.started_at),
            ended_at=iso(step.ended_at),
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
