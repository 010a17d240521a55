"""Fit a trace into the ``execution_data`` budget, in tiers: full → summary → minimal.

Each tier says what it dropped (``truncation``); the run row's own columns (markers, path,
``completion_failure``, error) are never part of this document, so they always survive.
"""

from __future__ import annotations

import json
from typing import Any

from flowtrail.diagnostics.spans import Span, count

DEFAULT_BUDGET = 3 * 1024 * 1024
KEEP_ITERATIONS = 20  # per container in the summary tier: the first and last ten
_TEXT_LIMIT = 1024


def _size(doc: Any) -> int:
    return len(json.dumps(doc, separators=(",", ":"), default=repr).encode())


def _summary_span(span: Span, elided: list[int]) -> Span:
    out = {k: v for k, v in span.items() if k not in ("input", "output", "children")}
    if isinstance(out.get("error"), str) and len(out["error"]) > _TEXT_LIMIT:
        out["error"] = out["error"][:_TEXT_LIMIT] + "…"
    logs = out.get("logs")
    if isinstance(logs, str) and len(logs) > _TEXT_LIMIT:  # the end says most: keep it
        out["logs"] = "…" + logs[-_TEXT_LIMIT:]
        out["logs_truncated"] = int(out.get("logs_truncated") or 0) + len(logs) - _TEXT_LIMIT
    children = span.get("children", [])
    iterations = [c for c in children if c.get("type") == "iteration"]
    if len(iterations) > KEEP_ITERATIONS:
        half = KEEP_ITERATIONS // 2
        keep = {id(c) for c in iterations[:half] + iterations[-half:]}
        dropped = [c for c in iterations if id(c) not in keep]
        elided[0] += sum(count(c) for c in dropped)
        out["elided_iterations"] = len(dropped)
        children = [c for c in children if c.get("type") != "iteration" or id(c) in keep]
    out["children"] = [_summary_span(c, elided) for c in children]
    return out


def _minimal_span(span: Span, elided: list[int]) -> Span:
    out: dict[str, Any] = {
        k: span[k]
        for k in (
            "name",
            "type",
            "block_id",
            "status",
            "started_at",
            "ended_at",
            "duration_ms",
            "error",
            "iterations",
            "cost",
        )
        if k in span
    }
    if isinstance(out.get("error"), str):
        out["error"] = out["error"][:_TEXT_LIMIT]
    kept = []
    for child in span.get("children", []):
        if child.get("type") == "iteration":
            elided[0] += count(child)
            continue
        kept.append(_minimal_span(child, elided))
    out["children"] = kept
    return out


def compact(
    root: Span, span_count: int, budget: int = DEFAULT_BUDGET, elided_in_memory: int = 0
) -> dict[str, Any]:
    """The ``execution_data`` document for a finished (or paused) trace."""
    doc: dict[str, Any] = {"trace": root, "truncation": None}
    if elided_in_memory:
        doc["truncation"] = {
            "tier": "full",
            "elided_spans": elided_in_memory,
            "reason": "span limit reached while running",
        }
    original = _size(doc)
    if original <= budget:
        return doc
    for tier, shrink in (("summary", _summary_span), ("minimal", _minimal_span)):
        elided = [elided_in_memory]
        smaller = shrink(root, elided)
        doc = {
            "trace": smaller,
            "truncation": {
                "tier": tier,
                "original_bytes": original,
                "budget_bytes": budget,
                "span_count": span_count,
                "elided_spans": elided[0],
            },
        }
        doc["truncation"]["stored_bytes"] = 0
        # the size field is part of what it measures: settle it (digits rarely change twice)
        for _ in range(3):
            size = _size(doc)
            if doc["truncation"]["stored_bytes"] == size:
                break
            doc["truncation"]["stored_bytes"] = size
        if size <= budget:
            return doc
    doc = {
        "trace": None,
        "truncation": {
            "tier": "none",
            "original_bytes": original,
            "budget_bytes": budget,
            "span_count": span_count,
            "elided_spans": span_count,
            "reason": "even the minimal trace exceeds the budget",
        },
    }
    return doc
