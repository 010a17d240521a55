"""diagnostics/compaction.py: a trace is fitted into the budget in tiers, full → summary →
minimal → none, and every tier says what it dropped."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flowtrail.diagnostics.compaction import KEEP_ITERATIONS, compact


def size(doc: Any) -> int:
    return len(json.dumps(doc, separators=(",", ":"), default=repr).encode())


def block(name: str, payload: int = 0, error: str | None = None) -> dict[str, Any]:
    span: dict[str, Any] = {
        "name": name,
        "type": "function",
        "block_id": name,
        "status": "completed",
        "started_at": "2026-01-01T00:00:00+00:00",
        "ended_at": "2026-01-01T00:00:01+00:00",
        "duration_ms": 1000,
        "input": {"data": "i" * payload},
        "output": {"result": "o" * payload},
        "error": error,
        "tries": 1,
        "tokens": {"prompt": 1, "completion": 2},
        "model": "m",
        "cost": 0.5,
        "children": [],
    }
    if error is not None:
        span["status"] = "failed"
    return span


def loop(name: str, iterations: int, payload: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "type": "loop",
        "block_id": name,
        "status": "completed",
        "started_at": "2026-01-01T00:00:00+00:00",
        "ended_at": "2026-01-01T00:00:09+00:00",
        "duration_ms": 9000,
        "iterations": iterations,
        "children": [
            {
                "name": f"{name} #{i}",
                "type": "iteration",
                "status": "completed",
                "started_at": "2026-01-01T00:00:00+00:00",
                "children": [block(f"it{i}", payload)],
            }
            for i in range(iterations)
        ],
    }


def trace(*children: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "wf",
        "type": "workflow",
        "status": "completed",
        "started_at": "2026-01-01T00:00:00+00:00",
        "children": list(children),
    }


def count(span: dict[str, Any]) -> int:
    return 1 + sum(count(c) for c in span.get("children", []))


def walk(span: dict[str, Any]) -> list[dict[str, Any]]:
    return [span, *[s for c in span.get("children", []) for s in walk(c)]]


BIG = trace(block("fetch", 5000, error="x" * 3000), loop("each", 25, payload=200))
FULL = size({"trace": BIG, "truncation": None})


def tier_budgets() -> tuple[int, int]:
    """Sizes of the summary and minimal documents of BIG (found with a generous budget)."""
    summary = compact(BIG, count(BIG), FULL - 1)
    assert summary["truncation"]["tier"] == "summary"
    minimal = compact(BIG, count(BIG), size(summary) - 200)
    assert minimal["truncation"]["tier"] == "minimal"
    return size(summary), size(minimal)


def test_full_tier_when_the_trace_fits() -> None:
    doc = compact(BIG, count(BIG), FULL)
    assert doc == {"trace": BIG, "truncation": None}


def test_full_tier_records_spans_elided_while_running() -> None:
    doc = compact(BIG, count(BIG) + 7, FULL * 2, elided_in_memory=7)
    assert doc["trace"] is BIG
    assert doc["truncation"] == {
        "tier": "full",
        "elided_spans": 7,
        "reason": "span limit reached while running",
    }


def test_summary_tier_drops_payloads_and_middle_iterations() -> None:
    summary_size, _ = tier_budgets()
    budget = summary_size + 100
    doc = compact(BIG, count(BIG), budget)

    t = doc["truncation"]
    assert t["tier"] == "summary"
    assert t["original_bytes"] == FULL
    assert t["budget_bytes"] == budget
    assert t["span_count"] == count(BIG)
    dropped = 25 - KEEP_ITERATIONS
    assert t["elided_spans"] == dropped * 2  # each iteration span holds one block span
    spans = walk(doc["trace"])
    assert all("input" not in s and "output" not in s for s in spans)
    each = next(s for s in spans if s.get("block_id") == "each")
    kept = [c["name"] for c in each["children"]]
    half = KEEP_ITERATIONS // 2
    assert kept == [f"each #{i}" for i in [*range(half), *range(25 - half, 25)]]
    assert each["elided_iterations"] == dropped
    fetch = next(s for s in spans if s.get("block_id") == "fetch")
    assert fetch["error"] == "x" * 1024 + "…"
    assert (fetch["status"], fetch["duration_ms"], fetch["tokens"], fetch["cost"]) == (
        "failed",
        1000,
        {"prompt": 1, "completion": 2},
        0.5,
    )
    assert size(doc) <= budget + 40  # (see the stored_bytes test below)


def test_minimal_tier_keeps_only_the_skeleton() -> None:
    summary_size, _ = tier_budgets()
    doc = compact(BIG, count(BIG), summary_size - 200)

    t = doc["truncation"]
    assert t["tier"] == "minimal"
    assert t["elided_spans"] == 25 * 2  # every iteration and the block inside it
    spans = walk(doc["trace"])
    each = next(s for s in spans if s.get("block_id") == "each")
    assert each["children"] == []
    assert each["iterations"] == 25
    fetch = next(s for s in spans if s.get("block_id") == "fetch")
    assert set(fetch) == {
        "name",
        "type",
        "block_id",
        "status",
        "started_at",
        "ended_at",
        "duration_ms",
        "error",
        "cost",
        "children",
    }
    assert fetch["error"] == "x" * 1024


def test_no_trace_when_even_the_minimal_tier_is_too_big() -> None:
    doc = compact(BIG, count(BIG), 100)
    assert doc["trace"] is None
    assert doc["truncation"]["tier"] == "none"
    assert doc["truncation"]["elided_spans"] == count(BIG)
    assert doc["truncation"]["original_bytes"] == FULL
    assert "minimal trace exceeds the budget" in doc["truncation"]["reason"]


TIERS = ["full", "summary", "minimal", "none"]


@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=50, max_value=FULL + 1000),
    st.integers(min_value=50, max_value=FULL + 1000),
)
def test_a_bigger_budget_never_gives_a_smaller_tier(a: int, b: int) -> None:
    small, large = sorted((a, b))

    def tier(budget: int) -> str:
        doc = compact(BIG, count(BIG), budget)
        return "full" if doc["truncation"] is None else doc["truncation"]["tier"]

    assert TIERS.index(tier(large)) <= TIERS.index(tier(small))


def test_a_compacted_document_fits_its_budget_and_reports_its_true_size() -> None:
    summary_size, minimal_size = tier_budgets()
    for budget in [
        *range(summary_size - 40, summary_size + 40),
        *range(minimal_size - 40, minimal_size + 40),
    ]:
        doc = compact(BIG, count(BIG), budget)
        if doc["truncation"]["tier"] in ("summary", "minimal"):
            assert size(doc) <= budget, budget
            assert doc["truncation"]["stored_bytes"] == size(doc)


def test_summary_tier_keeps_the_end_of_long_logs_and_counts_the_rest() -> None:
    talker = block("talker", payload=4000)
    talker["logs"] = "".join(f"line {k:04d}\n" for k in range(1000))  # 10,000 characters
    talker["logs_truncated"] = 7
    doc = compact({**block("root"), "children": [talker]}, 2, budget=6000)

    assert doc["truncation"]["tier"] == "summary"
    kept = doc["trace"]["children"][0]
    assert kept["logs"] == "…" + talker["logs"][-1024:]
    assert kept["logs"].endswith("line 0999\n")
    assert kept["logs_truncated"] == 7 + 10_000 - 1024
