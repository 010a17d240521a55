"""A trace too large for its budget is compacted in tiers, and the row keeps every
diagnostic: the exact span count, markers, path and error."""

from __future__ import annotations

import json
import time

import pytest

from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import FinalizationPath, RunStatus
from tests.integration.diagnostics.support import count_spans, trace_of

CODE = """
async def tick(i):
    return i

async def boom():
    raise RuntimeError("after the big loop")
"""


def big_loop(n: int, then_fail: bool) -> dict:
    blocks: dict = {
        "start": {"type": "start"},
        "lp": {
            "type": "loop",
            "count": n,
            "max_iterations": n,
            "blocks": {
                "t": {"type": "function", "call": "FNS:tick", "with": {"i": "{{ loop.index }}"}}
            },
        },
    }
    connections = ["start -> lp"]
    if then_fail:
        blocks["boom"] = {"type": "function", "call": "FNS:boom"}
        connections.append("lp -> boom")
    return {"name": "big", "blocks": blocks, "connections": connections}


# Each sequential iteration is a marker round trip. The default suite compacts a 2,000-
# iteration failing run and a 1,000-iteration completed one (output kept), each against a
# budget it overflows; the full 10,000 (tens of seconds on PostgreSQL on a loaded machine)
# runs with the slow tests.
@pytest.mark.parametrize(
    ("n", "budget", "then_fail"),
    [
        (2_000, 40_000, True),
        (1_000, 20_000, False),
        pytest.param(10_000, 200_000, True, marks=pytest.mark.slow),
    ],
    ids=["2000-failed", "1000-completed", "10000-failed"],
)
async def test_large_loop_is_compacted_keeping_the_diagnostics(
    db, flow, n, budget, then_fail
) -> None:
    fl = flow(big_loop(n, then_fail), CODE)
    t0 = time.monotonic()
    report = await Runner(Settings(trace_budget_bytes=budget), db).run(fl.workflow)
    elapsed = time.monotonic() - t0
    rec = await db.get_run(report.run_id)

    # A hang guard only, far above the time on a loaded machine (a quadratic blow-up at
    # these sizes would take many minutes); never a performance assertion.
    assert elapsed < 120, f"{elapsed:.1f}s"
    expected_spans = 1 + 1 + 1 + n + n + (1 if then_fail else 0)  # root start lp its blocks
    assert rec.trace_span_count == expected_spans
    data = rec.execution_data
    truncation = data["truncation"]
    assert truncation["tier"] in ("summary", "minimal")
    assert truncation["original_bytes"] > budget == truncation["budget_bytes"]
    assert truncation["stored_bytes"] <= budget
    assert truncation["span_count"] == expected_spans
    stored = count_spans(trace_of(rec))
    assert truncation["elided_spans"] == expected_spans - stored > 0
    assert len(json.dumps(data, separators=(",", ":"))) <= budget
    assert rec.has_trace_spans
    assert rec.last_started_block is not None and rec.last_completed_block is not None
    if then_fail:
        assert (rec.status, rec.finalization_path) == (
            RunStatus.FAILED,
            FinalizationPath.FORCE_FAILED,
        )
        assert rec.error_block_id == "boom" and "after the big loop" in (rec.error_message or "")
        assert rec.last_started_block.block_id == "boom"
        assert rec.last_completed_block.block_id == "boom"
    else:
        assert (rec.status, rec.finalization_path) == (
            RunStatus.COMPLETED,
            FinalizationPath.COMPLETED,
        )
        assert rec.last_started_block.block_id == "t"
        assert rec.last_completed_block.block_id == "lp"
        assert len(rec.output["results"]) == n
        loop_span = next(s for s in trace_of(rec)["children"] if s.get("block_id") == "lp")
        assert loop_span["iterations"] == n
