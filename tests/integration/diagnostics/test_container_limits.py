"""A parallel's branch cap at run time, on the durable record of both backends: a count or
collection known only while running fails the parallel before its first branch."""

from __future__ import annotations

import asyncio

from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from tests.integration.diagnostics.support import one_span, spans_of, trace_of

CODE = """
calls = []

def touch(i):
    calls.append(i)
    return i
"""


def fan(**parallel: object) -> dict:
    return {
        "name": "fan",
        "inputs": {"n": {"type": "integer"}, "items": {"type": "array"}},
        "blocks": {
            "start": {"type": "start"},
            "p": {
                "type": "parallel",
                **parallel,
                "blocks": {
                    "t": {
                        "type": "function",
                        "call": "FNS:touch",
                        "with": {"i": "{{ parallel.index }}"},
                    }
                },
            },
        },
        "connections": ["start -> p"],
    }


async def test_a_dynamic_count_over_max_branches_fails_before_any_branch(db, flow) -> None:
    fl = flow(fan(count="{{ start.n }}", max_branches=50), CODE)
    report = await Runner(Settings(), db).run(fl.workflow, {"n": 1_000_000_000, "items": []})

    assert report.status is RunStatus.FAILED
    assert report.error_block_id == "p"
    assert "1000000000 branches exceed max_branches (50)" in (report.error or "")
    assert fl.module.calls == []
    rec = await db.get_run(report.run_id)
    assert rec.status is RunStatus.FAILED
    assert rec.error_block_id == "p"
    trace = trace_of(rec)
    span = one_span(trace, block_id="p")
    assert span["status"] == "error" and "max_branches (50)" in span["error"]
    assert spans_of(trace, block_id="t") == []


async def test_the_default_cap_applies_to_a_collection(db, flow) -> None:
    fl = flow(fan(collection="{{ start.items }}"), CODE)
    report = await Runner(Settings(), db).run(fl.workflow, {"n": 0, "items": list(range(1001))})

    assert report.status is RunStatus.FAILED
    assert "1001 branches exceed max_branches (1000)" in (report.error or "")
    assert fl.module.calls == []


async def test_a_count_at_the_cap_runs_every_branch_a_few_at_a_time(db, flow) -> None:
    fl = flow(fan(count="{{ start.n }}", max_branches=300, max_concurrency=3), CODE)
    report = await Runner(Settings(), db).run(fl.workflow, {"n": 300, "items": []})

    assert report.status is RunStatus.COMPLETED, report.error
    assert report.output == {"results": [{"result": i} for i in range(300)]}
    assert sorted(fl.module.calls) == list(range(300))


async def test_branches_are_launched_lazily_not_listed_up_front(db, flow) -> None:
    # 10**8 pending branches listed up front took gigabytes before the first one ran; now
    # only the running ones exist, so the first failure ends the parallel at once.
    code = CODE + "\ndef stop(i):\n    raise ValueError(f'branch {i} stops')\n"
    definition = fan(count="{{ start.n }}", max_branches=10**8, max_concurrency=2)
    definition["blocks"]["p"]["blocks"]["t"]["call"] = "FNS:stop"
    fl = flow(definition, code)
    report = await asyncio.wait_for(
        Runner(Settings(), db).run(fl.workflow, {"n": 10**8, "items": []}), 30
    )

    assert report.status is RunStatus.FAILED
    assert "branch 0 stops" in (report.error or "")
    rec = await db.get_run(report.run_id)
    assert one_span(trace_of(rec), block_id="p")["iterations"] <= 2
